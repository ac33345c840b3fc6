//! `values!`: enums of the API's string values (strategies, condition reasons), with their
//! parse and print.

/// Declares an enum of API string values with its parse and print, the first variant being
/// the default that an absent or unknown value reads as.
macro_rules! values {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// The value as the API spells it.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => stringify!($v)),+ }
            }

            /// Reads an API value; absent or unknown values read as the default.
            pub fn parse(v: Option<&str>) -> Self {
                $(if v == Some(stringify!($v)) { return Self::$v; })+
                [$(Self::$v),+][0]
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
