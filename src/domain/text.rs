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
}
