//! What the short texts people read in lists (names of people, tokens, webhooks, sources)
//! may not hold.

/// Control characters (line breaks, NUL, escapes) and the bidirectional controls
/// (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C) that make a name read differently
/// from what it is: U+202E followed by "gnp.exe" shows as "exe.png".
pub fn has_hidden_controls(text: &str) -> bool {
    text.chars().any(|c| c.is_control() || is_bidi_control(c))
}

/// The message that goes with a refused name, for `field`'s error.
pub const HIDDEN_CONTROLS: &str =
    "must not contain control characters (such as line breaks) or text-direction controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C)";

/// The characters [`has_hidden_controls`] finds, as the inside of a regular-expression
/// class (the API document states the rule with it; a test holds the two together).
macro_rules! hidden_class {
    () => {
        r"\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069"
    };
}

/// A name for the API document (JSON Schema, ECMA-262): something besides white space,
/// without what [`has_hidden_controls`] finds.
pub const NAME_PATTERN: &str = concat!(
    "^[^",
    hidden_class!(),
    "]*[^\\s",
    hidden_class!(),
    "][^",
    hidden_class!(),
    "]*$"
);

/// A text without what [`has_hidden_controls`] finds (it may be empty).
pub const PLAIN_PATTERN: &str = concat!("^[^", hidden_class!(), "]*$");

/// A text without control characters (`char::is_control`).
pub const NO_CONTROLS_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_controls_and_control_characters_are_found() {
        for hidden in [
            "a\u{202E}b",
            "\u{2066}x",
            "x\u{2069}",
            "a\u{200F}",
            "\u{061C}",
            "a\nb",
            "\0",
        ] {
            assert!(has_hidden_controls(hidden), "{hidden:?}");
        }
        for plain in ["Prod pager", "עברית", "العربية", "日本語", "café – ok"] {
            assert!(!has_hidden_controls(plain), "{plain:?}");
        }
    }

    #[test]
    fn the_documents_pattern_states_the_same_rule() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        // Every character of the first planes, alone and inside a name.
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            for name in [format!("{c}"), format!("a{c}b")] {
                let accepted = !name.trim().is_empty() && !has_hidden_controls(&name);
                assert_eq!(pattern.is_match(&name), accepted, "{name:?}");
            }
        }
        assert!(!pattern.is_match("   "), "blank");
        assert!(pattern.is_match(" Prod pager "));
        let plain = regex::Regex::new(PLAIN_PATTERN).unwrap();
        let no_controls = regex::Regex::new(NO_CONTROLS_PATTERN).unwrap();
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let text = format!("a{c}");
            assert_eq!(plain.is_match(&text), !has_hidden_controls(&text), "{c:?}");
            assert_eq!(no_controls.is_match(&text), !c.is_control(), "{c:?}");
        }
        assert!(plain.is_match(""));
    }
}
