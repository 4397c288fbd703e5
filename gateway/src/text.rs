//! Text for terminals: how many columns a string takes, and padding to a width.

/// The terminal columns `text` takes: East Asian wide characters (kanji, kana, hangul,
/// full-width forms) take two.
pub fn columns(text: &str) -> usize {
    text.chars()
        .map(|c| {
            let wide = matches!(u32::from(c),
                0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD);
            if wide { 2 } else { 1 }
        })
        .sum()
}

/// `text` cut to `width` columns (with `…`) or padded with spaces to it, for tables.
pub fn fit(text: &str, width: usize) -> String {
    if columns(text) <= width {
        return format!("{text}{}", " ".repeat(width - columns(text)));
    }
    let mut out = String::new();
    for character in text.chars() {
        if columns(&out) + columns(&character.to_string()) + 1 > width {
            break;
        }
        out.push(character);
    }
    out.push('…');
    format!("{out}{}", " ".repeat(width.saturating_sub(columns(&out))))
}

#[cfg(test)]
mod tests {
    use super::{columns, fit};

    #[test]
    fn wide_characters_take_two_columns_and_tables_line_up() {
        assert_eq!(columns("株式会社abc"), 11);
        assert_eq!(fit("株式会社", 10), "株式会社  ");
        assert_eq!(columns(&fit("株式会社テスト建設", 10)), 10);
        assert_eq!(fit("did:key:z6Mkabcdef", 10), "did:key:z…");
    }
}
