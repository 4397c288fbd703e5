//! Operator roles. An admin client certificate names its holder (the subject's common name)
//! and carries one role (the subject's organisational unit, `tfc-role:<role>`); every API
//! route declares the least role it needs. A certificate with no role, or one this gateway
//! does not know, reaches nothing but the probes.

use std::fmt;
use std::str::FromStr;

/// The prefix of the organisational unit that carries a role.
pub const ROLE_UNIT_PREFIX: &str = "tfc-role:";

/// What an operator may do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads the gateway's status, peers, fields and members.
    Viewer,
    /// A viewer who also screens applications, explains tiers and works with data.
    Clerk,
    /// A clerk who also runs the gateway: dials, threat intel, countermeasures, status lists.
    Operator,
    /// Everything, including membership, fields and the audit checkpoint.
    Admin,
    /// A viewer who also reads the audit log and the disclosure log; changes nothing.
    Auditor,
    /// Reads the TAXII collections and nothing else.
    Siem,
}

impl Role {
    /// Every role, for help texts and tests.
    pub const ALL: [Role; 6] = [
        Role::Viewer,
        Role::Clerk,
        Role::Operator,
        Role::Admin,
        Role::Auditor,
        Role::Siem,
    ];

    /// The role's name, as certificates and routes spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Clerk => "clerk",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Siem => "siem",
        }
    }

    /// Whether a holder of this role may use a route that declares `least`.
    ///
    /// viewer < clerk < operator < admin is a ladder. An auditor may do what a viewer may,
    /// and read the audit; a siem may read TAXII and nothing else; an operator or admin may
    /// read TAXII too.
    pub fn satisfies(self, least: Role) -> bool {
        use Role::*;
        match least {
            Viewer => matches!(self, Viewer | Clerk | Operator | Admin | Auditor),
            Clerk => matches!(self, Clerk | Operator | Admin),
            Operator => matches!(self, Operator | Admin),
            Admin => self == Admin,
            Auditor => matches!(self, Auditor | Admin),
            Siem => matches!(self, Siem | Operator | Admin),
        }
    }

    /// The organisational unit that carries this role in a certificate.
    pub fn unit(self) -> String {
        format!("{ROLE_UNIT_PREFIX}{}", self.as_str())
    }

    /// The role an organisational unit carries, if it is one this gateway knows.
    pub fn from_unit(unit: &str) -> Option<Role> {
        unit.strip_prefix(ROLE_UNIT_PREFIX)?.parse().ok()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
                format!("unknown role {text:?}; one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn the_ladder_and_the_side_roles() {
        assert!(Role::Admin.satisfies(Role::Clerk));
        assert!(Role::Clerk.satisfies(Role::Viewer));
        assert!(!Role::Clerk.satisfies(Role::Operator));
        assert!(!Role::Viewer.satisfies(Role::Clerk));
        assert!(Role::Auditor.satisfies(Role::Viewer));
        assert!(Role::Auditor.satisfies(Role::Auditor));
        assert!(!Role::Auditor.satisfies(Role::Clerk));
        assert!(!Role::Operator.satisfies(Role::Auditor));
        assert!(Role::Siem.satisfies(Role::Siem));
        for least in Role::ALL {
            assert_eq!(Role::Siem.satisfies(least), least == Role::Siem, "{least}");
            assert!(Role::Admin.satisfies(least), "{least}");
        }
    }

    #[test]
    fn a_role_round_trips_through_its_unit_and_strangers_do_not() {
        for role in Role::ALL {
            assert_eq!(Role::from_unit(&role.unit()), Some(role));
        }
        assert_eq!(Role::from_unit("tfc-role:root"), None);
        assert_eq!(Role::from_unit("admin"), None);
        assert!("superuser".parse::<Role>().is_err());
    }
}
