//! A small extract-transform-load pipeline over CSV sales records:
//! `extract | parse_csv | clean | aggregate | load`, reading its input from
//! a granted directory and writing its report into another.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wfhost_guest::{TaskError, task};

/// One sale, as parsed from a CSV line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sale {
    pub region: String,
    pub product: String,
    pub quantity: i64,
    pub unit_price: f64,
}

/// Totals of one group of sales.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    pub orders: u64,
    pub quantity: i64,
    pub revenue: f64,
}

/// Parses CSV text with a `region,product,quantity,unit_price` header into sales.
#[task]
pub fn parse_csv(text: String) -> Result<Vec<Sale>, TaskError> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| TaskError::fail("the CSV is empty"))?
        .split(',')
        .map(str::trim)
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| TaskError::fail(format!("the CSV has no '{name}' column")))
    };
    let (region, product, quantity, price) = (
        column("region")?,
        column("product")?,
        column("quantity")?,
        column("unit_price")?,
    );
    lines
        .enumerate()
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let field = |i: usize| {
                fields.get(i).copied().ok_or_else(|| {
                    TaskError::fail(format!("line {}: expected {} fields", n + 2, header.len()))
                })
            };
            Ok(Sale {
                region: field(region)?.to_string(),
                product: field(product)?.to_string(),
                quantity: field(quantity)?
                    .parse()
                    .map_err(|e| TaskError::fail(format!("line {}: quantity: {e}", n + 2)))?,
                unit_price: field(price)?
                    .parse()
                    .map_err(|e| TaskError::fail(format!("line {}: unit_price: {e}", n + 2)))?,
            })
        })
        .collect()
}

/// Drops returns and free items, and normalizes region and product names.
#[task]
pub fn clean(sales: Vec<Sale>) -> Vec<Sale> {
    let kept: Vec<Sale> = sales
        .into_iter()
        .filter(|sale| sale.quantity > 0 && sale.unit_price > 0.0)
        .map(|sale| Sale {
            region: sale.region.to_uppercase(),
            product: sale.product.to_lowercase(),
            ..sale
        })
        .collect();
    wfhost_guest::log::info(format!("{} sales kept after cleaning", kept.len()));
    kept
}

/// Totals orders, quantity and revenue per `by` field (`region` or `product`).
#[task]
pub fn aggregate(
    sales: Vec<Sale>,
    by: Option<String>,
) -> Result<BTreeMap<String, Totals>, TaskError> {
    let by = by.unwrap_or_else(|| "region".to_string());
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    for sale in sales {
        let key = match by.as_str() {
            "region" => sale.region,
            "product" => sale.product,
            other => return Err(TaskError::fail(format!("cannot group by '{other}'"))),
        };
        let entry = totals.entry(key).or_default();
        entry.orders += 1;
        entry.quantity += sale.quantity;
        entry.revenue =
            ((entry.revenue + sale.quantity as f64 * sale.unit_price) * 100.0).round() / 100.0;
    }
    Ok(totals)
}

/// Reads the CSV text of the file at `path` (in a granted directory).
#[task]
pub fn extract(path: String) -> Result<String, TaskError> {
    std::fs::read_to_string(&path).map_err(|err| TaskError::fail(format!("reading {path}: {err}")))
}

/// Writes `report` as pretty JSON to `path` (in a directory granted
/// `write`) and returns it, so the workflow's result is the report.
#[task]
pub fn load(report: serde_json::Value, path: String) -> Result<serde_json::Value, TaskError> {
    let text = serde_json::to_string_pretty(&report)? + "\n";
    std::fs::write(&path, &text)
        .map_err(|err| TaskError::fail(format!("writing {path}: {err}")))?;
    Ok(report)
}

wfhost_guest::export_tasks!(extract, parse_csv, clean, aggregate, load);
