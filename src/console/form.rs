//! A console form as sent (urlencoded or multipart, read once by the guard) and as shown back:
//! the values typed, and beside each field what is wrong with it.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header;
use axum::http::request::Parts;

use crate::error::{AppError, AppResult, FieldErrors};

/// Fields a form may have at most; more is not a form a console page sent.
const MAX_FIELDS: usize = 200;
/// Characters kept of one text field.
const MAX_FIELD_CHARS: usize = 20_000;

/// An uploaded file.
#[derive(Clone)]
pub struct Upload {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Bytes,
}

/// The fields of a posted form, in order; text fields and uploaded files apart.
#[derive(Clone, Default)]
pub struct Form {
    fields: Vec<(String, String)>,
    files: Vec<(String, Upload)>,
}

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_owned()
    }

    /// Whether a checkbox `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty() && v != "0")
    }

    /// A textarea of one value per line, blank lines dropped.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A file chosen for `name`; a file input left empty sends none.
    pub fn file(&self, name: &str) -> Option<&Upload> {
        self.files
            .iter()
            .find(|(k, f)| k == name && !(f.bytes.is_empty() && f.file_name.is_empty()))
            .map(|(_, f)| f)
    }

    /// Every text field, to show the form back as it was typed.
    pub fn view(&self) -> FormView {
        FormView {
            values: self.fields.iter().cloned().collect(),
            ..FormView::default()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Form {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Form>()
            .cloned()
            .ok_or_else(|| AppError::invalid("this request carries no form"))
    }
}

/// Reads a body as a form: `application/x-www-form-urlencoded` or `multipart/form-data`
/// (anything else is an empty form).
pub async fn parse(parts: &Parts, bytes: Bytes) -> AppResult<Form> {
    let kind = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut form = Form::default();
    if kind.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            push_field(&mut form, k.into_owned(), v.into_owned())?;
        }
    } else if kind.starts_with("multipart/form-data") {
        let mut req = Request::new(Body::from(bytes));
        // With the console's body limit (an extension the router set), not the default 2 MB.
        *req.extensions_mut() = parts.extensions.clone();
        if let Some(v) = parts.headers.get(header::CONTENT_TYPE) {
            req.headers_mut().insert(header::CONTENT_TYPE, v.clone());
        }
        let bad = |_| AppError::invalid("the form could not be read");
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|_| AppError::invalid("the form could not be read"))?;
        while let Some(field) = multipart.next_field().await.map_err(bad)? {
            let name = field.name().unwrap_or("").to_owned();
            match field.file_name().map(str::to_owned) {
                Some(file_name) => {
                    let content_type = field.content_type().unwrap_or("").to_owned();
                    let bytes = field.bytes().await.map_err(bad)?;
                    if form.files.len() + form.fields.len() >= MAX_FIELDS {
                        return Err(too_many());
                    }
                    form.files.push((
                        name,
                        Upload {
                            file_name,
                            content_type,
                            bytes,
                        },
                    ));
                }
                None => {
                    let value = field.bytes().await.map_err(bad)?;
                    push_field(
                        &mut form,
                        name,
                        String::from_utf8_lossy(&value).into_owned(),
                    )?;
                }
            }
        }
    }
    Ok(form)
}

fn push_field(form: &mut Form, name: String, value: String) -> AppResult<()> {
    if form.files.len() + form.fields.len() >= MAX_FIELDS {
        return Err(too_many());
    }
    let value = if value.chars().count() > MAX_FIELD_CHARS {
        value.chars().take(MAX_FIELD_CHARS).collect()
    } else {
        value
    };
    form.fields.push((name, value));
    Ok(())
}

fn too_many() -> AppError {
    AppError::invalid(format!("a console form has at most {MAX_FIELDS} fields"))
}

/// A form as shown: the values to fill in and what is wrong, per field and overall.
#[derive(Clone, Debug, Default)]
pub struct FormView {
    pub values: HashMap<String, String>,
    pub errors: FieldErrors,
    /// What is wrong with the form as a whole.
    pub general: Option<String>,
}

impl FormView {
    /// A form filled with `values`.
    pub fn with(values: &[(&str, String)]) -> FormView {
        FormView {
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ..FormView::default()
        }
    }

    pub fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// Whether a checkbox is ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.values
            .get(name)
            .is_some_and(|v| !v.is_empty() && v != "0")
    }

    /// Whether a select's option `option` is the chosen one.
    pub fn is(&self, name: &str, option: &str) -> bool {
        self.value(name) == option
    }

    pub fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name)
    }

    pub fn add(&mut self, name: &str, message: impl Into<String>) {
        self.errors.add(name, message);
    }

    /// Field errors of the management layer: `redirect_uris[1]` and `wxacode.page` belong
    /// beside `redirect_uris` and `wxacode`.
    pub fn add_fields(&mut self, fields: &FieldErrors) {
        for (name, message) in fields.iter() {
            let base = name.split(['[', '.']).next().unwrap_or(name);
            self.errors.add(base, message);
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.general.is_some()
    }
}
