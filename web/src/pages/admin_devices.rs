//! Admin: devices and their scales.

use askama::Template;

use super::Layout;

/// Admin: devices.
#[derive(Debug, Template)]
#[template(path = "devices.html")]
pub struct DevicesPage {
    pub layout: Layout,
    pub devices: Vec<DeviceRow>,
    /// A just-created enrollment code, shown this once.
    pub code: Option<EnrollmentShown>,
    pub form: DeviceForm,
    /// The scale protocols the edge agent speaks.
    pub protocols: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub device_id: String,
    pub name: String,
    pub station: String,
    pub state: String,
    pub online: bool,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct EnrollmentShown {
    pub device_id: String,
    pub code: String,
    pub expires: String,
}

#[derive(Debug, Clone, Default)]
pub struct DeviceForm {
    pub device_id: String,
    pub name: String,
    pub site: String,
    pub station_id: String,
    pub protocol: String,
    pub port: String,
}
