//! Where an instance runs: its account, region, zone, VPC and subnet, held once for every
//! instance of a read in the same place ([`Interner::place`](super::Interner::place)).

use std::fmt;
use std::sync::Arc;

use super::Shared;

/// Where an instance runs. One pointer: a subnet's instances share the five names, and
/// holding them each cost 40 bytes an instance (40 MB at a million).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Place(Option<Arc<Where>>);

/// The names of a place, each when known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Where {
    /// The account that owns the instance (its reservation's owner).
    pub account: Option<Shared>,
    /// e.g. `eu-west-1`.
    pub region: Option<Shared>,
    /// e.g. `eu-west-1a`.
    pub availability_zone: Option<Shared>,
    /// `vpc-...`
    pub vpc_id: Option<Shared>,
    /// `subnet-...`
    pub subnet_id: Option<Shared>,
}

impl Place {
    /// The place these names make (none at all: no place, and no allocation).
    pub fn new(names: Where) -> Self {
        if names == Where::default() {
            Self(None)
        } else {
            Self(Some(Arc::new(names)))
        }
    }

    /// Its names.
    pub fn names(&self) -> &Where {
        static NOWHERE: Where = Where {
            account: None,
            region: None,
            availability_zone: None,
            vpc_id: None,
            subnet_id: None,
        };
        self.0.as_deref().unwrap_or(&NOWHERE)
    }
}

impl From<Where> for Place {
    fn from(names: Where) -> Self {
        Self::new(names)
    }
}

impl fmt::Debug for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.names(), f)
    }
}
