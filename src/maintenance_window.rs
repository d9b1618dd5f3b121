//! The maintenance window of a campaign: from now until `window_days` later,
//! with the end moved forward to a Tuesday when it would fall on Friday to
//! Monday, so that alerts come back while the team is at work mid-week.

use jiff::civil::Weekday;
use jiff::{Span, Timestamp, ToSpan};

/// Start and end of the window, fixed once per run so every host shares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl MaintenanceWindow {
    pub fn starting_at(start: Timestamp, window_days: u32) -> Self {
        let naive_end = start.to_zoned(jiff::tz::TimeZone::UTC).saturating_add(i64::from(window_days).days());
        let shift = match naive_end.weekday() {
            Weekday::Monday => 1,
            Weekday::Friday => 4,
            Weekday::Saturday => 3,
            Weekday::Sunday => 2,
            Weekday::Tuesday | Weekday::Wednesday | Weekday::Thursday => 0,
        };
        let end = naive_end.saturating_add(Span::new().days(shift)).timestamp();
        MaintenanceWindow { start, end }
    }

    /// `2026-11-21T05:13:00Z`, as Alertmanager takes it (whole seconds).
    pub fn start_text(&self) -> String {
        format_utc(self.start)
    }

    pub fn end_text(&self) -> String {
        format_utc(self.end)
    }
}

fn format_utc(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_weekday(start: &str) -> (String, Weekday) {
        let window = MaintenanceWindow::starting_at(start.parse().unwrap(), 28);
        (window.end_text(), window.end.to_zoned(jiff::tz::TimeZone::UTC).weekday())
    }

    #[test]
    fn end_moves_to_a_tuesday_from_friday_to_monday() {
        // 2026-11-02 is a Monday; 28 days later is a Monday again.
        assert_eq!(end_weekday("2026-11-02T10:30:00Z"), ("2026-12-01T10:30:00Z".into(), Weekday::Tuesday));
        assert_eq!(end_weekday("2026-11-03T10:30:00Z"), ("2026-12-01T10:30:00Z".into(), Weekday::Tuesday));
        assert_eq!(end_weekday("2026-11-04T10:30:00Z"), ("2026-12-02T10:30:00Z".into(), Weekday::Wednesday));
        assert_eq!(end_weekday("2026-11-05T10:30:00Z"), ("2026-12-03T10:30:00Z".into(), Weekday::Thursday));
        assert_eq!(end_weekday("2026-11-06T10:30:00Z"), ("2026-12-08T10:30:00Z".into(), Weekday::Tuesday));
        assert_eq!(end_weekday("2026-11-07T10:30:00Z"), ("2026-12-08T10:30:00Z".into(), Weekday::Tuesday));
        assert_eq!(end_weekday("2026-11-08T10:30:00Z"), ("2026-12-08T10:30:00Z".into(), Weekday::Tuesday));
    }

    #[test]
    fn time_of_day_is_kept_and_start_is_now() {
        let window = MaintenanceWindow::starting_at("2026-11-21T05:13:42.9Z".parse().unwrap(), 28);
        assert_eq!(window.start_text(), "2026-11-21T05:13:42Z");
        // 2026-12-19 is a Saturday: moved to Tuesday the 22nd.
        assert_eq!(window.end_text(), "2026-12-22T05:13:42Z");
    }

    #[test]
    fn other_window_lengths() {
        let window = MaintenanceWindow::starting_at("2026-11-04T00:00:00Z".parse().unwrap(), 1);
        assert_eq!(window.end_text(), "2026-11-05T00:00:00Z");
    }
}
