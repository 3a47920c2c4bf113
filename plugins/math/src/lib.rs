//! Integer arithmetic: the smallest useful plugin.
//!
//! Overflow is a failure, never a silent wrap.

use wfhost_guest::{TaskError, task};

fn overflow(op: &str, x: i64, y: i64) -> TaskError {
    TaskError::fail(format!("integer overflow: {x} {op} {y}"))
}

/// Adds two 64-bit integers.
#[task]
pub fn add(x: i64, y: i64) -> Result<i64, TaskError> {
    x.checked_add(y).ok_or_else(|| overflow("+", x, y))
}

/// Multiplies two 64-bit integers.
#[task]
pub fn mul(x: i64, y: i64) -> Result<i64, TaskError> {
    x.checked_mul(y).ok_or_else(|| overflow("*", x, y))
}

/// Sums a list of 64-bit integers.
#[task]
pub fn xsum(numbers: Vec<i64>) -> Result<i64, TaskError> {
    numbers.iter().try_fold(0i64, |total, &n| {
        total.checked_add(n).ok_or_else(|| overflow("+", total, n))
    })
}

wfhost_guest::export_tasks!(add, mul, xsum);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_plain_functions() {
        assert_eq!(add(2, 2), Ok(4));
        assert_eq!(mul(3, 3), Ok(9));
        assert_eq!(xsum(vec![1, 2, 3]), Ok(6));
        assert_eq!(
            add(i64::MAX, 1),
            Err(TaskError::fail(format!(
                "integer overflow: {} + 1",
                i64::MAX
            )))
        );
    }
}
