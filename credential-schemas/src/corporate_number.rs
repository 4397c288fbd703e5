//! The Japanese corporate number (法人番号): 13 digits, the first being a check digit over the
//! other twelve, as published by the National Tax Agency.

/// Computes the check digit for a 12-digit base number, or `None` if `base` is not 12 ASCII
/// digits.
///
/// With the base digits numbered from the right as n = 1..12, weights are 1 for odd n and 2
/// for even n; the check digit is `9 - (Σ digit·weight mod 9)`, so it lies in 1..=9.
pub fn corporate_number_check_digit(base: &str) -> Option<u8> {
    let bytes = base.as_bytes();
    if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let weighted_sum: u32 = bytes
        .iter()
        .rev()
        .enumerate()
        .map(|(offset, byte)| {
            let digit = u32::from(byte - b'0');
            let weight = if offset % 2 == 0 { 1 } else { 2 };
            digit * weight
        })
        .sum();
    // The remainder is below 9, so the difference always fits in 1..=9.
    Some(9 - (weighted_sum % 9) as u8)
}

/// Whether `number` is a well-formed corporate number whose check digit is right.
pub fn corporate_number_is_valid(number: &str) -> bool {
    let bytes = number.as_bytes();
    if bytes.len() != 13 || !bytes[0].is_ascii_digit() {
        return false;
    }
    match number.get(1..) {
        Some(base) => corporate_number_check_digit(base) == Some(bytes[0] - b'0'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_tax_agency_number_is_valid() {
        // 国税庁's own corporate number, as published.
        assert!(corporate_number_is_valid("7000012050002"));
        assert_eq!(corporate_number_check_digit("000012050002"), Some(7));
    }

    #[test]
    fn every_wrong_check_digit_is_rejected() {
        for wrong in ['1', '2', '3', '4', '5', '6', '8', '9'] {
            assert!(!corporate_number_is_valid(&format!("{wrong}000012050002")));
        }
    }

    #[test]
    fn computed_numbers_round_trip() {
        // Real-world shaped bases: registry office code, kind code, serial.
        for base in [
            "010001008846",
            "011101012345",
            "120001077531",
            "999999999999",
        ] {
            let check = corporate_number_check_digit(base).unwrap();
            assert!((1..=9).contains(&check));
            assert!(corporate_number_is_valid(&format!("{check}{base}")));
        }
    }

    #[test]
    fn shapes_other_than_thirteen_digits_are_rejected() {
        for bad in [
            "",
            "700001205000",
            "70000120500021",
            "7000O12050002",
            "７000012050002",
        ] {
            assert!(!corporate_number_is_valid(bad), "{bad}");
        }
        assert_eq!(corporate_number_check_digit("00001205000a"), None);
    }

    #[test]
    fn a_single_transposition_is_caught() {
        // Swapping two adjacent different digits changes the weighted sum by their difference.
        let base = "000012050002";
        let check = corporate_number_check_digit(base).unwrap();
        assert!(!corporate_number_is_valid(&format!("{check}000021050002")));
    }
}
