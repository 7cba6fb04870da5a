//! Functions that misbehave, to check that each is stopped and classified.

use capstan::QueryCtx;

use crate::api::Message;

#[capstan::query]
pub fn spin(_ctx: &QueryCtx) -> capstan::Result<f64> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
        if n == u64::MAX {
            return Ok(n as f64);
        }
    }
}

/// Lists a channel like `api:list`, but spins once it holds a message
/// whose body is "spin": a query that turns slow when re-run.
#[capstan::query]
pub fn spin_on(ctx: &QueryCtx, channel: String) -> capstan::Result<usize> {
    let messages = ctx
        .db()
        .query::<Message>()
        .with_index(Message::by_channel, |q| q.eq(&channel))
        .collect()?;
    if messages.iter().any(|m| m.body == "spin") {
        spin(ctx)?;
    }
    Ok(messages.len())
}

#[capstan::query]
pub fn bomb(_ctx: &QueryCtx) -> capstan::Result<usize> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn depth(n: u64) -> u64 {
    let padding = std::hint::black_box([n; 16]);
    if n == 0 {
        padding[3]
    } else {
        depth(n - 1) + std::hint::black_box(padding[1])
    }
}

#[capstan::query]
pub fn recurse(_ctx: &QueryCtx) -> capstan::Result<f64> {
    Ok(depth(std::hint::black_box(100_000_000)) as f64)
}

#[capstan::query]
pub fn panics(_ctx: &QueryCtx) -> capstan::Result<()> {
    let empty: Vec<u8> = std::hint::black_box(Vec::new());
    panic!("index {} is out of range", empty.len() + 3);
}

#[capstan::query]
pub fn huge(_ctx: &QueryCtx, bytes: usize) -> capstan::Result<String> {
    Ok("x".repeat(bytes))
}

/// An action that calls itself, deeper each time, until it is refused:
/// the refusal comes back up the chain.
#[capstan::action]
pub fn nest(ctx: &mut capstan::ActionCtx, depth: f64) -> capstan::Result<f64> {
    ctx.run_action::<nest>(&NestArgs { depth: depth + 1.0 })
}
