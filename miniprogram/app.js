// ScanGate's reference Mini Program. Every page is a Component (WeChat's page-as-component
// form), so that the same files run in WeChat and in the Node tests (miniprogram-simulate).
App({});
