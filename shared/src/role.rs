//! Roles, permissions and the people who act.
//!
//! The permission table is the single source of truth for "who may do what": the API asks
//! [`Role::allows`] at every endpoint, and the batch aggregate asks it again for the commands
//! that need it, so a missing check in one layer is caught by the other.

use serde::{Deserialize, Serialize};

/// What a user is in the refinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs batches at the stations they are assigned to.
    Operator,
    /// An operator who may also approve or reject red flags and block batches.
    Supervisor,
    /// Everything except deleting audit data.
    Admin,
    /// Reads analytics and exports; cannot execute batches or edit flows.
    Analyst,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Supervisor, Role::Admin, Role::Analyst];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Analyst => "analyst",
        }
    }

    /// The permission table.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match permission {
            // Nobody deletes audit data: the chain is append-only.
            DeleteAudit => false,
            ViewBatches | ViewFlows | ViewWip => true,
            CreateBatches | ExecuteSteps | RaiseFlag => {
                matches!(self, Role::Operator | Role::Supervisor | Role::Admin)
            }
            ApproveFlags | BlockBatch | ViewDevices | RecordCalibration => {
                matches!(self, Role::Supervisor | Role::Admin)
            }
            UnblockBatch | OverrideStep | ManageFlows | ManageUsers | ManageDevices => {
                self == Role::Admin
            }
            // Analysts read the audit log beside the reports: checking who did what is their
            // work too, and reading it changes nothing.
            ViewAnalytics | ExportData | ViewAudit => matches!(self, Role::Analyst | Role::Admin),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "operator" => Ok(Role::Operator),
            "supervisor" => Ok(Role::Supervisor),
            "admin" => Ok(Role::Admin),
            "analyst" => Ok(Role::Analyst),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; use operator, supervisor, admin or analyst")]
pub struct UnknownRole(pub String);

/// Something a user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    ViewBatches,
    ViewFlows,
    ViewWip,
    CreateBatches,
    ExecuteSteps,
    RaiseFlag,
    ApproveFlags,
    BlockBatch,
    UnblockBatch,
    OverrideStep,
    ManageFlows,
    ManageUsers,
    ViewAudit,
    ViewAnalytics,
    ExportData,
    DeleteAudit,
    /// Register, enroll, revoke and configure edge devices; send them commands.
    ManageDevices,
    /// See the fleet: devices, their status and readings.
    ViewDevices,
    /// Record scale calibrations and routine tests.
    RecordCalibration,
}

impl Permission {
    pub const ALL: [Permission; 19] = [
        Permission::ViewBatches,
        Permission::ViewFlows,
        Permission::ViewWip,
        Permission::CreateBatches,
        Permission::ExecuteSteps,
        Permission::RaiseFlag,
        Permission::ApproveFlags,
        Permission::BlockBatch,
        Permission::UnblockBatch,
        Permission::OverrideStep,
        Permission::ManageFlows,
        Permission::ManageUsers,
        Permission::ViewAudit,
        Permission::ViewAnalytics,
        Permission::ExportData,
        Permission::DeleteAudit,
        Permission::ManageDevices,
        Permission::ViewDevices,
        Permission::RecordCalibration,
    ];
}

/// The user behind a command, as the domain needs to know them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// Station ids this user works at. Only operators and supervisors are bound by it.
    pub stations: Vec<String>,
}

impl Actor {
    pub fn can(&self, permission: Permission) -> bool {
        self.role.allows(permission)
    }

    /// Operators and supervisors execute steps only at their own stations; admins anywhere;
    /// analysts nowhere.
    pub fn may_operate_at(&self, station_id: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Operator | Role::Supervisor => self.stations.iter().any(|s| s == station_id),
            Role::Analyst => false,
        }
    }

    /// Whether this user may look at a batch whose flow passes through `flow_stations`: its
    /// events, its photos, its page. Operators follow the batches of the pipelines they work
    /// in (before, at and after their station: the chain of custody is theirs too), and no
    /// others; the other roles that see batches see them all.
    pub fn may_view_batch_through<'a>(
        &self,
        mut flow_stations: impl Iterator<Item = &'a str>,
    ) -> bool {
        if !self.can(Permission::ViewBatches) {
            return false;
        }
        match self.role {
            Role::Operator => flow_stations.any(|st| self.stations.iter().any(|mine| mine == st)),
            Role::Supervisor | Role::Admin | Role::Analyst => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_deletes_audit_data() {
        for r in Role::ALL {
            assert!(!r.allows(Permission::DeleteAudit), "{r}");
        }
    }

    #[test]
    fn supervisor_is_operator_plus_approvals() {
        for p in Permission::ALL {
            if Role::Operator.allows(p) {
                assert!(Role::Supervisor.allows(p), "{p:?}");
            }
        }
        assert!(Role::Supervisor.allows(Permission::ApproveFlags));
        assert!(!Role::Operator.allows(Permission::ApproveFlags));
    }

    #[test]
    fn admin_has_everything_but_audit_deletion() {
        for p in Permission::ALL {
            assert_eq!(Role::Admin.allows(p), p != Permission::DeleteAudit, "{p:?}");
        }
    }

    #[test]
    fn analyst_reads_and_exports_only() {
        for p in [
            Permission::CreateBatches,
            Permission::ExecuteSteps,
            Permission::ManageFlows,
            Permission::ApproveFlags,
            Permission::ManageUsers,
        ] {
            assert!(!Role::Analyst.allows(p), "{p:?}");
        }
        assert!(Role::Analyst.allows(Permission::ViewAnalytics));
        assert!(Role::Analyst.allows(Permission::ExportData));
        assert!(Role::Analyst.allows(Permission::ViewAudit));
        assert!(!Role::Analyst.allows(Permission::DeleteAudit));
        assert!(!Role::Supervisor.allows(Permission::ViewAudit));
        assert!(!Role::Operator.allows(Permission::ViewAudit));
    }

    #[test]
    fn operators_are_scoped_to_their_stations() {
        let op = Actor {
            user_id: "u1".into(),
            username: "op".into(),
            role: Role::Operator,
            stations: vec!["receiving".into()],
        };
        assert!(op.may_operate_at("receiving"));
        assert!(!op.may_operate_at("assay"));
        let admin = Actor {
            role: Role::Admin,
            stations: vec![],
            ..op.clone()
        };
        assert!(admin.may_operate_at("assay"));
        let analyst = Actor {
            role: Role::Analyst,
            stations: vec!["assay".into()],
            ..op
        };
        assert!(!analyst.may_operate_at("assay"));
    }

    #[test]
    fn operators_view_the_batches_of_pipelines_through_their_stations() {
        let op = Actor {
            user_id: "u1".into(),
            username: "op".into(),
            role: Role::Operator,
            stations: vec!["casting".into()],
        };
        let gold = ["receiving", "refining", "casting"];
        assert!(op.may_view_batch_through(gold.into_iter()));
        assert!(!op.may_view_batch_through(["receiving", "assay"].into_iter()));
        assert!(!op.may_view_batch_through(std::iter::empty()));
        for role in [Role::Supervisor, Role::Admin, Role::Analyst] {
            let other = Actor {
                role,
                stations: vec![],
                ..op.clone()
            };
            assert!(
                other.may_view_batch_through(["assay"].into_iter()),
                "{role}"
            );
        }
    }
}
