//! Reading an expression: a macro (`@daily`...) or 5 or 6 fields, each a list of values,
//! ranges and steps, numbers or names; the error names the field and says why.

use super::error::{CronError, FieldError};
use super::fields::Field;
use super::value_set::ValueSet;
use super::CronSchedule;

impl CronSchedule {
    /// Parse a 5- or 6-field expression; the error says which field is wrong and why.
    pub fn parse(expression: &str) -> Result<CronSchedule, CronError> {
        let trimmed = expression.trim();
        let expanded = if trimmed.starts_with('@') {
            expand_macro(trimmed)?
        } else {
            expression
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let count = fields.len();
        if count != 5 && count != 6 {
            return Err(CronError::FieldCount {
                count,
                expression: expression.to_string(),
            });
        }
        // A 5-field expression fires at second 0; its fields start with the minute.
        let kinds: &[Field] = if count == 6 {
            &Field::ALL
        } else {
            &Field::ALL[1..]
        };
        let mut sets = [ValueSet::single(0); 6];
        let mut unrestricted = [false; 6];
        for (position, (&kind, &text)) in kinds.iter().zip(&fields).enumerate() {
            let set = parse_field(kind, text).map_err(|reason| CronError::Field {
                position: position + 1,
                field: kind.name(),
                expression: expression.to_string(),
                reason,
            })?;
            sets[kind as usize] = set;
            unrestricted[kind as usize] = text == "*" || text == "?";
        }
        let [seconds, minutes, hours, days_of_month, months, days_of_week] = sets;
        Ok(CronSchedule {
            expression: expression.to_string(),
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            any_day_of_month: unrestricted[Field::DayOfMonth as usize],
            any_day_of_week: unrestricted[Field::DayOfWeek as usize],
        })
    }
}

/// Replace a `@name` macro with its 5-field expression.
fn expand_macro(text: &str) -> Result<&'static str, CronError> {
    match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Ok("0 0 1 1 *"),
        "@monthly" => Ok("0 0 1 * *"),
        "@weekly" => Ok("0 0 * * 0"),
        "@daily" | "@midnight" => Ok("0 0 * * *"),
        "@hourly" => Ok("0 * * * *"),
        "@reboot" => Err(CronError::Reboot),
        _ => Err(CronError::UnknownMacro {
            text: text.to_string(),
        }),
    }
}

/// One field's text to the set of values it matches; the error is the reason alone (the
/// caller names the field).
fn parse_field(field: Field, text: &str) -> Result<ValueSet, FieldError> {
    if text == "?" {
        return if field.is_day() {
            let (low, high) = field.span();
            Ok(ValueSet::range(low, high, 1))
        } else {
            Err(FieldError::QuestionMark)
        };
    }
    let mut set = ValueSet::EMPTY;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(FieldError::EmptyItem {
                list: text.to_string(),
            });
        }
        set = set.union(parse_item(field, item)?);
    }
    if field == Field::DayOfWeek && set.contains(7) {
        // 7 is Sunday, stored as 0 so that matching has one number per weekday.
        set = set.without(7).union(ValueSet::single(0));
    }
    Ok(set)
}

/// One item of a list: `*`, `a`, `a-b`, each optionally followed by `/step`.
fn parse_item(field: Field, item: &str) -> Result<ValueSet, FieldError> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(field, item, step)?)),
        None => (item, None),
    };
    let (span_low, span_high) = field.span();
    let (low, high) = if range == "*" {
        (span_low, span_high)
    } else if let Some((first, last)) = range.split_once('-') {
        let low = parse_value(field, item, first, false)?;
        let high = parse_value(field, item, last, true)?;
        if low > high {
            return Err(FieldError::Backwards {
                first: first.to_string(),
                last: last.to_string(),
            });
        }
        (low, high)
    } else {
        let value = parse_value(field, item, range, false)?;
        // `a/n` runs from a to the end of the field.
        if step.is_some() {
            (value, span_high.max(value))
        } else {
            (value, value)
        }
    };
    Ok(ValueSet::range(low, high, step.unwrap_or(1)))
}

/// The `n` of `/n`: at least 1, at most the number of values in the field.
fn parse_step(field: Field, item: &str, text: &str) -> Result<u8, FieldError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::StepNotNumber {
            step: text.to_string(),
            item: item.to_string(),
        });
    }
    let (low, high) = field.span();
    let too_large = || FieldError::StepTooLarge {
        step: text.to_string(),
        item: item.to_string(),
        low,
        high,
    };
    let step: u8 = text.parse().map_err(|_| too_large())?;
    if step == 0 {
        return Err(FieldError::StepZero {
            item: item.to_string(),
        });
    }
    if step > high - low + 1 {
        return Err(too_large());
    }
    Ok(step)
}

/// A number or a name within the field's range. `range_end` is set for the `b` of `a-b`, where
/// `SUN` means 7 so that `FRI-SUN` reads as Friday to Sunday.
fn parse_value(field: Field, item: &str, text: &str, range_end: bool) -> Result<u8, FieldError> {
    let (low, high) = field.accepted();
    if text.is_empty() {
        return Err(FieldError::MissingNumber {
            item: item.to_string(),
        });
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = || FieldError::OutOfRange {
            value: text.to_string(),
            low,
            high,
        };
        let value: u8 = text.parse().map_err(|_| out_of_range())?;
        if value < low || value > high {
            return Err(out_of_range());
        }
        return Ok(value);
    }
    match field.names() {
        Some((names, first)) => {
            let index = names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(text));
            match index.and_then(|index| u8::try_from(index).ok()) {
                Some(0) if field == Field::DayOfWeek && range_end => Ok(7),
                Some(index) => Ok(first + index),
                None => Err(FieldError::UnknownName {
                    text: text.to_string(),
                    kind: if field == Field::Month {
                        "month"
                    } else {
                        "weekday"
                    },
                    first: names[0],
                    last: names[names.len() - 1],
                }),
            }
        }
        None => Err(FieldError::NotANumber {
            text: text.to_string(),
        }),
    }
}
