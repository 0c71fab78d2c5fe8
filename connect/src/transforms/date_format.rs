//! The subset of Java's `SimpleDateFormat` that `TimestampRouter`'s
//! `timestamp.format` takes, always in UTC (Kafka's router sets UTC too).
//!
//! Pattern letters: `y` year (`yy` its last two digits, any other count
//! the year padded to that many digits), `M` month (`M`/`MM` a number,
//! `MMM` `Jan`, `MMMM` `January`), `d` day of month, `H` hour of day
//! (0-23), `m` minute, `s` second, `S` millisecond; a number is padded
//! with zeros to the count of letters (`dd` is `05`). Text in single
//! quotes is literal (`''` is a quote), and so is every character that is
//! not an ASCII letter (`-`, `_`, `.`, digits). Any other letter (`h`,
//! `a`, `E`, `z`, ...) is refused when the connector is added, rather
//! than formatted differently from Kafka. Dates are in the proleptic
//! Gregorian calendar (Java switches to Julian before 1582).

/// One part of a parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// A pattern letter and how many times it repeats.
    Field(char, usize),
}

/// A parsed `timestamp.format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DateFormat {
    pieces: Vec<Piece>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const MILLIS_PER_DAY: i64 = 86_400_000;

impl DateFormat {
    /// Parses `pattern`; the error says what is not supported.
    pub(crate) fn parse(pattern: &str) -> std::result::Result<DateFormat, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                i = quoted(&chars, i, &mut literal)?;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                literal.push(c);
                i += 1;
                continue;
            }
            if !"yMdHmsS".contains(c) {
                return Err(format!(
                    "pattern letter `{c}` is not supported; spool formats y, M, d, H, m, s and S"
                ));
            }
            let count = chars[i..].iter().take_while(|&&x| x == c).count();
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Field(c, count));
            i += count;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(DateFormat { pieces })
    }

    /// `millis` since the epoch, formatted in UTC.
    pub(crate) fn format(&self, millis: i64) -> String {
        let days = millis.div_euclid(MILLIS_PER_DAY);
        let of_day = millis.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let mut out = String::new();
        for piece in &self.pieces {
            let (letter, count) = match piece {
                Piece::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Field(letter, count) => (*letter, *count),
            };
            let number = match letter {
                'y' if count == 2 => year.rem_euclid(100),
                'y' => year,
                'M' if count >= 3 => {
                    let name = MONTHS[(month - 1) as usize];
                    out.push_str(if count == 3 { &name[..3] } else { name });
                    continue;
                }
                'M' => month,
                'd' => day,
                'H' => of_day / 3_600_000,
                'm' => of_day / 60_000 % 60,
                's' => of_day / 1_000 % 60,
                _ => of_day % 1_000,
            };
            out.push_str(&format!("{number:0count$}"));
        }
        out
    }
}

/// Reads the quoted text starting at `chars[start]` (a quote) into
/// `literal`; the index after it.
fn quoted(
    chars: &[char],
    start: usize,
    literal: &mut String,
) -> std::result::Result<usize, String> {
    if chars.get(start + 1) == Some(&'\'') {
        literal.push('\'');
        return Ok(start + 2);
    }
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err("the pattern has an unterminated quote".into()),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                literal.push('\'');
                i += 2;
            }
            Some('\'') => return Ok(i + 1),
            Some(c) => {
                literal.push(*c);
                i += 1;
            }
        }
    }
}

/// The (year, month, day) of `days` since 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(pattern: &str, millis: i64) -> String {
        DateFormat::parse(pattern).unwrap().format(millis)
    }

    #[test]
    fn dates_are_formatted_in_utc_like_simple_date_format() {
        // 2023-11-14T22:13:20.007Z
        let t = 1_700_000_000_007;
        assert_eq!(format("yyyyMMdd", t), "20231114");
        assert_eq!(
            format("yyyy-MM-dd HH:mm:ss.SSS", t),
            "2023-11-14 22:13:20.007"
        );
        assert_eq!(format("yy_M_d'T'H", t), "23_11_14T22");
        assert_eq!(format("d MMM yyyy, MMMM", t), "14 Nov 2023, November");
        assert_eq!(format("'o''clock' HH''", t), "o'clock 22'");
        assert_eq!(format("yyyyMMdd", 0), "19700101");
        // A leap day, and a day before the epoch.
        assert_eq!(format("yyyy-MM-dd", 951_782_400_000), "2000-02-29");
        assert_eq!(format("yyyy-MM-dd HH:mm", -60_000), "1969-12-31 23:59");
    }

    #[test]
    fn unsupported_letters_and_open_quotes_are_refused() {
        let error = DateFormat::parse("yyyy hh a").unwrap_err();
        assert!(error.contains("`h`"), "{error}");
        let error = DateFormat::parse("yyyy'T").unwrap_err();
        assert!(error.contains("unterminated quote"), "{error}");
    }
}
