//! Assay fineness as recorded today: a `fineness=999.9` token in a mass check's note.
//!
//! The domain has no fineness field yet (adding one to `MassChecked` would change a public
//! type of `metcon-shared`), so the read model picks the fineness in parts per thousand out
//! of the note of the weighing it was assayed for. The syntax is strict so that free text
//! never turns into metal: the word `fineness`, `=` or `:`, a decimal number with at most
//! four decimals in (0, 1000], and an optional `‰`. Anything else is no fineness.

use rust_decimal::Decimal;

/// The fineness in ‰ recorded in `note`, if it carries a well-formed token.
pub fn from_note(note: &str) -> Option<Decimal> {
    let lower = note.to_ascii_lowercase();
    let start = lower.find("fineness")?;
    let rest = note[start + "fineness".len()..].trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix(':'))?
        .trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let number = &rest[..end];
    let after = &rest[end..];
    if !(after.is_empty()
        || after.starts_with('‰')
        || after.starts_with(char::is_whitespace)
        || after.starts_with([',', ';', ')']))
    {
        return None;
    }
    let value = Decimal::from_str_exact(number).ok()?;
    if value <= Decimal::ZERO || value > Decimal::ONE_THOUSAND || value.scale() > 4 {
        return None;
    }
    Some(value.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test literal")
    }

    #[test]
    fn well_formed_tokens_are_read() {
        assert_eq!(from_note("fineness=999.9"), Some(d("999.9")));
        assert_eq!(
            from_note("Assay: Fineness: 999.95‰, lab 7"),
            Some(d("999.95"))
        );
        assert_eq!(from_note("fineness = 750 after remelt"), Some(d("750")));
        assert_eq!(from_note("fineness=1000"), Some(d("1000")));
    }

    #[test]
    fn anything_else_is_no_fineness() {
        for note in [
            "",
            "crucible residue",
            "fineness",
            "fineness=",
            "fineness=0",
            "fineness=1000.1",
            "fineness=99.99999",
            "fineness=-5",
            "fineness=999x",
            "fineness 999.9",
            "fineness=9.9.9",
        ] {
            assert_eq!(from_note(note), None, "{note:?}");
        }
    }
}
