//! The scan funnel drawn as SVG on the server: one bar per step (totals of the period) and one
//! column per hour or day (created behind, confirmed in front). Geometry is computed here; the
//! template only places it.

use crate::funnel::Row;
use crate::pages::Lang;

/// The drawing's width and the left column for the step names, in SVG units.
pub const WIDTH: u32 = 480;
const LABEL_W: u32 = 118;
const BAR_MAX: u32 = 300;
const BAR_H: u32 = 20;
const BAR_GAP: u32 = 8;
const COLUMNS_H: u32 = 70;

pub struct Bar {
    pub label: &'static str,
    pub value: u64,
    pub y: u32,
    pub text_y: u32,
    pub width: u32,
    pub value_x: u32,
    pub colour: &'static str,
}

pub struct Column {
    pub x: u32,
    pub width: u32,
    pub created_y: u32,
    pub created_h: u32,
    pub confirmed_y: u32,
    pub confirmed_h: u32,
    /// What a pointer over it says (the bucket's start and counts).
    pub title: String,
}

pub struct FunnelChart {
    pub id: String,
    pub bars: Vec<Bar>,
    pub columns: Vec<Column>,
    pub height: u32,
    pub columns_top: u32,
    pub columns_bottom: u32,
    pub label_x: u32,
    pub bar_x: u32,
    /// A sentence saying what the chart shows, for screen readers.
    pub summary: String,
    /// Median seconds from scan to confirm over the period (see [`median`]).
    pub median_secs: Option<u64>,
    pub confirmed: u64,
    pub created: u64,
}

/// The colours of the steps: each at least 3:1 against white (WCAG non-text contrast).
pub const CREATED: &str = "#4a5565";
pub const SCANNED: &str = "#0a58a8";
pub const CONFIRMED: &str = "#0b6b3a";
pub const EXCHANGED: &str = "#5b3fa0";
pub const CANCELLED: &str = "#b3261e";
pub const EXPIRED: &str = "#8a5a00";

impl FunnelChart {
    /// The chart of `rows` (one per hour or day, oldest first); `hourly` labels the columns.
    pub fn new(id: &str, rows: &[Row], lang: Lang, hourly: bool) -> FunnelChart {
        let total = |f: fn(&Row) -> u64| rows.iter().map(f).sum::<u64>();
        let created = total(|r| r.created);
        let confirmed = total(|r| r.confirmed);
        let expired_known = rows.iter().all(|r| r.expired.is_some());
        let steps: [(&'static str, u64, &'static str); 6] = [
            (lang.pick("已创建", "created"), created, CREATED),
            (
                lang.pick("已扫码", "scanned"),
                total(|r| r.scanned),
                SCANNED,
            ),
            (lang.pick("已确认", "confirmed"), confirmed, CONFIRMED),
            (
                lang.pick("已换取令牌", "exchanged"),
                total(|r| r.exchanged),
                EXCHANGED,
            ),
            (
                lang.pick("已取消", "cancelled"),
                total(|r| r.cancelled),
                CANCELLED,
            ),
            (
                lang.pick("已过期", "expired"),
                total(|r| r.expired.unwrap_or(0)),
                EXPIRED,
            ),
        ];
        let max = steps.iter().map(|s| s.1).max().unwrap_or(0).max(1);
        let bars: Vec<Bar> = steps
            .iter()
            .enumerate()
            .map(|(i, (label, value, colour))| {
                let y = 4 + i as u32 * (BAR_H + BAR_GAP);
                let width = ((*value as f64 / max as f64) * BAR_MAX as f64).round() as u32;
                let width = if *value > 0 { width.max(2) } else { 0 };
                Bar {
                    label,
                    value: *value,
                    y,
                    text_y: y + BAR_H - 5,
                    width,
                    value_x: LABEL_W + width + 6,
                    colour,
                }
            })
            .collect();
        let columns_top = 4 + 6 * (BAR_H + BAR_GAP) + 10;
        let columns_bottom = columns_top + COLUMNS_H;
        let tallest = rows.iter().map(|r| r.created).max().unwrap_or(0).max(1);
        let n = rows.len().max(1) as u32;
        let slot = (WIDTH - LABEL_W) / n;
        let columns = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let h = |v: u64| ((v as f64 / tallest as f64) * COLUMNS_H as f64).round() as u32;
                let (created_h, confirmed_h) = (h(r.created), h(r.confirmed));
                let when = time::OffsetDateTime::from_unix_timestamp(r.start / 1000)
                    .ok()
                    .and_then(|t| {
                        let format = if hourly {
                            time::macros::format_description!("[month]-[day] [hour]:00 UTC")
                        } else {
                            time::macros::format_description!("[year]-[month]-[day]")
                        };
                        t.format(&format).ok()
                    })
                    .unwrap_or_default();
                Column {
                    x: LABEL_W + i as u32 * slot,
                    width: slot.saturating_sub(2).max(1),
                    created_y: columns_bottom - created_h,
                    created_h,
                    confirmed_y: columns_bottom - confirmed_h,
                    confirmed_h,
                    title: format!(
                        "{when}: {} {}, {} {}",
                        r.created,
                        lang.pick("已创建", "created"),
                        r.confirmed,
                        lang.pick("已确认", "confirmed")
                    ),
                }
            })
            .collect();
        let summary = steps
            .iter()
            .map(|(label, value, _)| format!("{label} {value}"))
            .collect::<Vec<_>>()
            .join(", ");
        let summary = if expired_known {
            summary
        } else {
            format!(
                "{summary} ({})",
                lang.pick(
                    "最近的二维码尚未全部到期",
                    "the latest codes have not all ended yet"
                )
            )
        };
        FunnelChart {
            id: id.to_owned(),
            bars,
            columns,
            height: columns_bottom + 18,
            columns_top,
            columns_bottom,
            label_x: LABEL_W - 8,
            bar_x: LABEL_W,
            summary,
            median_secs: median(rows),
            confirmed,
            created,
        }
    }

    pub fn width(&self) -> u32 {
        WIDTH
    }
}

/// The median seconds from scan to confirm over several buckets: the median of the buckets'
/// medians, each weighted by its confirmations (the tallies keep buckets of time, not every
/// confirmation, so this is the closest the period allows).
pub fn median(rows: &[Row]) -> Option<u64> {
    let mut weighted: Vec<(u64, u64)> = rows
        .iter()
        .filter_map(|r| r.median_scan_to_confirm_secs.map(|m| (m, r.confirmed)))
        .filter(|(_, n)| *n > 0)
        .collect();
    weighted.sort_unstable();
    let total: u64 = weighted.iter().map(|(_, n)| n).sum();
    let mut seen = 0;
    for (m, n) in weighted {
        seen += n;
        if seen * 2 >= total {
            return Some(m);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(created: u64, confirmed: u64, median: Option<u64>) -> Row {
        Row {
            created,
            scanned: created,
            confirmed,
            median_scan_to_confirm_secs: median,
            ..Row::default()
        }
    }

    #[test]
    fn bars_are_as_long_as_their_share_of_the_largest_step() {
        let chart = FunnelChart::new(
            "c",
            &[row(10, 5, Some(5)), row(10, 0, None)],
            Lang::En,
            true,
        );
        assert_eq!(chart.bars[0].value, 20);
        assert_eq!(chart.bars[0].width, BAR_MAX);
        assert_eq!(chart.bars[2].value, 5);
        assert_eq!(chart.bars[2].width, BAR_MAX / 4);
        assert_eq!(chart.columns.len(), 2);
        assert!(chart.summary.contains("confirmed 5"));
    }

    #[test]
    fn an_empty_period_draws_no_bars_and_has_no_median() {
        let chart = FunnelChart::new("c", &[row(0, 0, None)], Lang::Zh, false);
        assert!(chart.bars.iter().all(|b| b.width == 0));
        assert_eq!(chart.median_secs, None);
    }

    #[test]
    fn the_period_median_weighs_each_bucket_by_its_confirmations() {
        assert_eq!(median(&[row(9, 1, Some(60)), row(9, 9, Some(5))]), Some(5));
        assert_eq!(median(&[row(9, 5, Some(60)), row(9, 1, Some(5))]), Some(60));
        assert_eq!(median(&[]), None);
    }
}
