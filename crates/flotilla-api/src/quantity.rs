//! Kubernetes resource quantities ("500m", "2", "4Gi", "1.5e3") as exact integers of
//! milli-units, and back.

/// Parses a quantity into thousandths of its unit (millicores for CPU, millibytes for
/// memory). None when the text is not a quantity.
pub fn parse_milli(s: &str) -> Option<i128> {
    let s = s.trim();
    let (num, suffix) =
        match s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')) {
            Some(i) => s.split_at(i),
            None => (s, ""),
        };
    let (neg, num) = match num.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    if num.is_empty() {
        return None;
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // value = digits / 10^frac_len, scaled to milli: digits * 1000 * mult / 10^frac_len.
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let scale = 10i128.checked_pow(frac.len() as u32)?;
    let (mul, div): (i128, i128) = match suffix {
        "" => (1000, 1),
        "m" => (1, 1),
        "k" => (1000 * 1000, 1),
        "M" => (1000 * 1_000_000, 1),
        "G" => (1000 * 1_000_000_000, 1),
        "T" => (1000 * 1_000_000_000_000, 1),
        "P" => (1000 * 1_000_000_000_000_000, 1),
        "Ki" => (1000 * 1024, 1),
        "Mi" => (1000 * 1024i128.pow(2), 1),
        "Gi" => (1000 * 1024i128.pow(3), 1),
        "Ti" => (1000 * 1024i128.pow(4), 1),
        "Pi" => (1000 * 1024i128.pow(5), 1),
        "Ei" => (1000 * 1024i128.pow(6), 1),
        "E" => (1000 * 10i128.pow(18), 1),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp >= 0 {
                (1000 * 10i128.checked_pow(exp as u32)?, 1)
            } else {
                (1000, 10i128.checked_pow((-exp) as u32)?)
            }
        }
        _ => return None,
    };
    let v = digits.checked_mul(mul)? / scale / div;
    Some(if neg { -v } else { v })
}

/// A CPU amount in millicores as Kubernetes prints it: whole cores without a suffix, else "m".
pub fn format_cpu(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// A memory amount (in milli-bytes) in the largest binary unit that divides it exactly.
pub fn format_memory(milli: i128) -> String {
    let bytes = milli / 1000;
    for (suffix, unit) in [
        ("Ti", 1i128 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_milli_units() {
        let cases = [
            ("2", Some(2000)),
            ("500m", Some(500)),
            ("1.5", Some(1500)),
            ("0.1", Some(100)),
            ("4Gi", Some(4 * 1024 * 1024 * 1024 * 1000)),
            ("128Mi", Some(128 * 1024 * 1024 * 1000)),
            ("1k", Some(1_000_000)),
            ("1e3", Some(1_000_000)),
            ("-1", Some(-1000)),
            ("", None),
            ("abc", None),
            ("1Xi", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_milli(s), want, "{s}");
        }
    }

    #[test]
    fn quantities_format_like_kubernetes() {
        assert_eq!(format_cpu(4000), "4");
        assert_eq!(format_cpu(3500), "3500m");
        assert_eq!(format_memory(8 * (1 << 30) * 1000), "8Gi");
        assert_eq!(format_memory(1536 * (1 << 20) * 1000), "1536Mi");
        assert_eq!(format_memory(1000 * 1000), "1000");
    }
}
