//! The records' clock: milliseconds since the Unix epoch, stored as such
//! and shown in ISO 8601 (UTC).

/// Milliseconds since the Unix epoch, now: the clock of every record's
/// timestamps and due times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// `ms` milliseconds since the Unix epoch in ISO 8601, in UTC, to the
/// millisecond: `2026-11-28T13:40:01.123Z`.
pub fn iso8601(ms: u64) -> String {
    let (days, in_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_date(days);
    let (hours, minutes) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (seconds, millis) = (in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
}

/// Milliseconds since the Unix epoch of an ISO 8601 date and time as
/// Celery and Python write them: `2026-11-28T13:40:01`, with a fraction of
/// a second (`.123456`) and an offset (`Z`, `+01:00`) or none (UTC), from
/// the year 1970 on. None for anything else.
pub fn parse_iso8601(text: &str) -> Option<u64> {
    let number = |part: &str| -> Option<u64> {
        (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let (date, time) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-');
    let (year, month, day) = (
        number(ymd.next()?)?,
        number(ymd.next()?)?,
        number(ymd.next()?)?,
    );
    // The offset: `Z`, `+HH:MM`, `-HH:MM`, or none.
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0i64)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, offset) = time.split_at(at);
        let (hours, minutes) = offset[1..].split_once(':')?;
        let minutes = (number(hours)? * 60 + number(minutes)?) as i64;
        (
            clock,
            if offset.starts_with('-') {
                -minutes
            } else {
                minutes
            },
        )
    } else {
        (time, 0)
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = whole.splitn(3, ':');
    let (hour, minute, second) = (
        number(hms.next()?)?,
        number(hms.next()?)?,
        number(hms.next()?)?,
    );
    let millis = if fraction.is_empty() {
        0
    } else {
        number(fraction)?;
        format!("{fraction:0<3}")[..3].parse::<u64>().ok()?
    };
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60
        && offset_minutes.abs() < 24 * 60;
    if !valid {
        return None;
    }
    let seconds = days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = seconds as i64 - offset_minutes * 60;
    u64::try_from(utc)
        .ok()
        .map(|seconds| seconds * 1000 + millis)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The days from 1970-01-01 to a proleptic Gregorian date from 1970 on,
/// counted as [`civil_date`] counts them back.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` days after 1970-01-01, by counting
/// 400-year eras of 146,097 days from 0000-03-01, so that a leap day falls
/// at the end of each year counted.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let from_march_0000 = days + 719_468;
    let era = from_march_0000 / 146_097;
    let day_of_era = from_march_0000 % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, five months of 153 days.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_iso_8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        // A leap day, a century that is not a leap year, and one that is.
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(iso8601(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_873_201_123), "2026-11-28T13:40:01.123Z");
        assert_eq!(iso8601(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }

    #[test]
    fn times_are_read_as_celery_and_python_write_them() {
        for ms in [0, 951_782_400_000, 4_107_542_399_999, 1_795_873_201_123] {
            assert_eq!(parse_iso8601(&iso8601(ms)), Some(ms), "{}", iso8601(ms));
        }
        let at = Some(1_795_873_201_123);
        assert_eq!(parse_iso8601("2026-11-28T13:40:01.123456+00:00"), at);
        assert_eq!(parse_iso8601("2026-11-28T14:40:01.123+01:00"), at);
        assert_eq!(parse_iso8601("2026-11-28T12:40:01.123-01:00"), at);
        assert_eq!(
            parse_iso8601("2026-11-28T13:40:01.1"),
            Some(1_795_873_201_100)
        );
        for wrong in [
            "",
            "2026-11-28",
            "2026-11-28 13:40:01",
            "2026-02-29T00:00:00",
            "2026-13-01T00:00:00",
            "2026-11-28T24:00:00",
            "1969-12-31T23:59:59",
            "2026-11-28T13:40:01+1",
            "x026-11-28T13:40:01",
        ] {
            assert_eq!(parse_iso8601(wrong), None, "{wrong}");
        }
    }
}
