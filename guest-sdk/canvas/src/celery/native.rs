//! A native canvas made Celery's: what Celery's client would send for it.

use serde_json::{Map, Value};

use super::{CeleryChord, CelerySignature, Shape, Transport};
use crate::{Canvas, Limit, StepOptions};

impl From<&crate::Signature> for CelerySignature {
    /// A native signature as Celery's client sends it: wfhost's limits and
    /// retry policy, which Celery has no option for, among the other
    /// options (a task message carries them in its `wfhost_options`
    /// header).
    fn from(signature: &crate::Signature) -> Self {
        let StepOptions {
            countdown,
            eta,
            expires,
            time_limit,
            link,
            link_error,
            ..
        } = &signature.options;
        let rest = StepOptions {
            countdown: None,
            eta: None,
            expires: None,
            time_limit: None,
            link: Vec::new(),
            link_error: Vec::new(),
            ..signature.options.clone()
        };
        let other = match serde_json::to_value(&rest) {
            Ok(Value::Object(other)) => other,
            _ => Map::new(),
        };
        let mut out = Self::task(
            signature.task.clone(),
            signature.args.clone(),
            signature.kwargs.clone(),
        );
        out.immutable = signature.immutable;
        out.options = Transport {
            countdown: *countdown,
            eta: eta.clone(),
            expires: expires.clone(),
            time_limit: match time_limit {
                Some(Limit::Value(seconds)) => Some(*seconds),
                _ => None,
            },
            link: link.iter().map(Self::from).collect(),
            link_error: link_error.iter().map(Self::from).collect(),
            other,
            ..Transport::default()
        };
        out
    }
}

impl From<&Canvas> for CelerySignature {
    /// A native canvas as Celery's client sends it.
    fn from(canvas: &Canvas) -> Self {
        let all = |items: &[Canvas]| items.iter().map(Self::from).collect();
        match canvas {
            Canvas::Signature(signature) => Self::from(signature),
            Canvas::Chain(steps) => Self::whole(Shape::Chain(all(steps))),
            Canvas::Group(members) => Self::whole(Shape::Group(all(members))),
            Canvas::Chord(chord) => Self::whole(Shape::Chord(Box::new(CeleryChord {
                header: all(&chord.header),
                header_options: Transport::default(),
                body: Self::from(&*chord.body),
                kwargs: Map::new(),
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chord, sig};

    #[test]
    fn a_native_canvas_becomes_what_celerys_client_sends() {
        let mut add = sig("math.add").args((1,));
        add.options.fuel = Some(Limit::Value(5));
        add.options.countdown = Some(2.0);
        add.options.link_error = vec![sig("math.oops").si()];
        let native = add.clone() | chord([add, sig("math.b")], sig("math.sum"));
        let celery = CelerySignature::from(&native);
        let Shape::Chain(steps) = &celery.shape else {
            panic!("a chain")
        };
        assert_eq!(steps[0].options.countdown, Some(2.0));
        assert_eq!(steps[0].options.other["fuel"], 5);
        assert_eq!(steps[0].options.link_error[0].name(), "math.oops");
        let json = celery.to_json();
        assert_eq!(json["kwargs"]["tasks"][1]["subtask_type"], "chord");
        assert_eq!(
            json["kwargs"]["tasks"][1]["kwargs"]["header"]["kwargs"]["tasks"][1]["task"],
            "math.b"
        );
        assert_eq!(CelerySignature::from_json(json).unwrap(), celery);
    }
}
