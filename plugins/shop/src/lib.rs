//! Order fulfillment: `validate | charge | reserve | notify`, with `refund`
//! as the compensation when a later step fails. Every step that reaches a
//! service does so over HTTP, with the step's idempotency key, to the
//! base URL granted as config `shop_url`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wfhost_guest::{TaskError, http, task};

/// One line of an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub quantity: u32,
}

/// An order as the shop receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub customer: String,
    pub items: Vec<Item>,
    pub cents: u64,
}

/// An order whose payment was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Charged {
    pub order: Order,
    pub charge_id: String,
}

fn shop_url(path: &str) -> Result<String, TaskError> {
    Ok(format!(
        "{}{path}",
        wfhost_guest::config::require("shop_url")?
    ))
}

/// POSTs `body` to the shop's `path`; a 4xx answer is a permanent failure
/// with the service's message, a 5xx or a network error a retry.
fn post(path: &str, body: &Value) -> Result<Value, TaskError> {
    let response = match http::post(shop_url(path)?).json(body)?.send() {
        Ok(response) => response,
        Err(err) if err.message().contains("grant") => {
            return Err(TaskError::fail(err.to_string()));
        }
        Err(err) => return Err(TaskError::retry(err.to_string()).countdown(0.2)),
    };
    let answer: Value = response.json().unwrap_or(Value::Null);
    match response.status {
        200..=299 => Ok(answer),
        400..=499 => Err(TaskError::fail(
            answer["error"]
                .as_str()
                .map_or_else(|| response.text(), str::to_string),
        )),
        status => Err(TaskError::retry(format!("{path}: status {status}")).countdown(0.2)),
    }
}

/// Checks that an order can be fulfilled at all.
#[task]
pub fn validate(order: Order) -> Result<Order, TaskError> {
    if order.id.is_empty() || order.customer.is_empty() {
        return Err(TaskError::fail("an order needs an id and a customer"));
    }
    if order.items.is_empty() || order.items.iter().any(|item| item.quantity == 0) {
        return Err(TaskError::fail(format!(
            "order {}: no items, or an empty one",
            order.id
        )));
    }
    if order.cents == 0 {
        return Err(TaskError::fail(format!(
            "order {}: nothing to charge",
            order.id
        )));
    }
    Ok(order)
}

/// Takes the payment. The payment service charges once per idempotency
/// key, so a retried or resumed charge is not taken twice.
#[task]
pub fn charge(order: Order) -> Result<Charged, TaskError> {
    let answer = post(
        "/payments/charge",
        &json!({"order_id": order.id, "customer": order.customer, "cents": order.cents}),
    )?;
    let charge_id = answer["charge_id"]
        .as_str()
        .ok_or_else(|| TaskError::fail(format!("the payment service answered {answer}")))?
        .to_string();
    Ok(Charged { order, charge_id })
}

/// Reserves the order's items; fails when one is out of stock.
#[task]
pub fn reserve(charged: Charged) -> Result<Charged, TaskError> {
    post(
        "/inventory/reserve",
        &json!({"order_id": charged.order.id, "items": charged.order.items}),
    )?;
    Ok(charged)
}

/// Tells the customer; the order is fulfilled.
#[task]
pub fn notify(charged: Charged) -> Result<Value, TaskError> {
    let message = format!("order {} is on its way", charged.order.id);
    post(
        "/notify/send",
        &json!({"to": charged.order.customer, "message": message}),
    )?;
    Ok(json!({"order_id": charged.order.id, "charge_id": charged.charge_id, "status": "fulfilled"}))
}

/// The compensation (`on_error`): refunds whatever was charged for the
/// order of the step that failed, and says why.
#[task]
pub fn refund(failure: Value) -> Result<Value, TaskError> {
    let first = &failure["args"][0];
    let order_id = first["order"]["id"]
        .as_str()
        .or_else(|| first["id"].as_str())
        .ok_or_else(|| {
            TaskError::fail(format!(
                "no order in the failed step's arguments: {failure}"
            ))
        })?;
    let answer = post("/payments/refund", &json!({"order_id": order_id}))?;
    Ok(json!({
        "order_id": order_id,
        "refunded": answer["refunded"],
        "because": failure["error"]["message"],
    }))
}

wfhost_guest::export_tasks!(validate, charge, reserve, notify, refund);
