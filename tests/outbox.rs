//! The load engine's outgoing byte queue (src/load/outbox.rs): whatever the pattern of appends
//! and partial writes, the bytes come out in order, none lost or repeated.

use proptest::prelude::*;
use regstorm::load::outbox::Outbox;
use std::collections::VecDeque;

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<u8>),
    Take(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(Op::Append),
        (0usize..5000).prop_map(Op::Take),
    ]
}

proptest! {
    #[test]
    fn bytes_come_out_in_order_as_from_a_plain_queue(ops in prop::collection::vec(op(), 1..200)) {
        let mut outbox = Outbox::default();
        let mut model: VecDeque<u8> = VecDeque::new();
        let mut out = Vec::new();
        let mut expected = Vec::new();
        for op in ops {
            match op {
                Op::Append(bytes) => {
                    outbox.tail().extend_from_slice(&bytes);
                    model.extend(bytes);
                }
                Op::Take(n) => {
                    let front = outbox.front(n).to_vec();
                    prop_assert!(front.len() <= n);
                    out.extend_from_slice(&front);
                    outbox.consume(front.len());
                    expected.extend(model.drain(..front.len()));
                }
            }
            prop_assert_eq!(outbox.len(), model.len());
            prop_assert_eq!(outbox.is_empty(), model.is_empty());
        }
        prop_assert_eq!(out, expected);
    }
}

#[test]
fn partial_writes_of_a_deep_queue_do_not_keep_the_taken_bytes() {
    // 10 MB queued, taken 1 KB at a time as a slow socket would: every byte comes out once,
    // in order.
    let mut outbox = Outbox::default();
    for i in 0..10_000u32 {
        outbox.tail().extend_from_slice(&[i as u8; 1000]);
    }
    let mut taken = 0usize;
    let mut first = Vec::new();
    while !outbox.is_empty() {
        let front = outbox.front(1024);
        if first.is_empty() {
            first = front.to_vec();
        }
        let n = front.len();
        taken += n;
        outbox.consume(n);
    }
    assert_eq!(taken, 10_000_000);
    assert_eq!(&first[..1000], &[0u8; 1000][..]);
    assert_eq!(first[1000], 1);
    // Consuming more than is waiting counts as all, and leaves an empty queue.
    outbox.tail().extend_from_slice(b"abc");
    outbox.consume(10);
    assert!(outbox.is_empty() && outbox.front(usize::MAX).is_empty());
}
