//! The machinery every generated file shares: an event scheduler and timed scripts of rare lines.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One generated file, produced a piece at a time.
pub trait Stream {
    /// Appends whole lines to `out` until it holds at least `limit` bytes or the file is complete;
    /// returns false once the file is complete.
    fn fill(&mut self, out: &mut Vec<u8>, limit: usize) -> bool;
}

/// A file written by numbered actors on a [`Sched`]: each event an actor fires writes its lines and
/// reschedules it.
pub trait Actors {
    /// The scheduler of the actors.
    fn sched(&mut self) -> &mut Sched;
    /// Writes actor `a`'s lines for time `t` and schedules its next event.
    fn fire(&mut self, t: i64, a: u32, out: &mut Vec<u8>);
}

impl<T: Actors> Stream for T {
    fn fill(&mut self, out: &mut Vec<u8>, limit: usize) -> bool {
        while out.len() < limit {
            let Some((t, a)) = self.sched().pop() else {
                return false;
            };
            self.fire(t, a, out);
        }
        true
    }
}

/// Actors (numbered) waiting for their next event time; ties go to the lower number.
pub struct Sched {
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    end: i64,
}

impl Sched {
    /// A scheduler that drops events at or after `end`.
    pub fn new(end: i64) -> Self {
        Sched {
            heap: BinaryHeap::new(),
            end,
        }
    }

    /// Schedules `actor` at `t` unless that is past the end.
    #[inline]
    pub fn at(&mut self, t: i64, actor: u32) {
        if t < self.end {
            self.heap.push(Reverse((t, actor)));
        }
    }

    /// The next event.
    #[inline]
    pub fn pop(&mut self) -> Option<(i64, u32)> {
        self.heap.pop().map(|Reverse(x)| x)
    }
}

/// Timed items of one file (rollout steps, human sessions, the attack), consumed in time order.
pub struct Script<T> {
    items: Vec<(i64, T)>,
    pos: usize,
}

impl<T> Script<T> {
    /// A script of the given items, sorted by time (stable, so equal times keep their order).
    pub fn new(mut items: Vec<(i64, T)>) -> Self {
        items.sort_by_key(|(t, _)| *t);
        Script { items, pos: 0 }
    }

    /// Time of the next item.
    pub fn next_time(&self) -> Option<i64> {
        self.items.get(self.pos).map(|(t, _)| *t)
    }

    /// Takes the next item.
    pub fn take(&mut self) -> Option<&T> {
        let item = self.items.get(self.pos).map(|(_, x)| x);
        self.pos += 1;
        item
    }
}

/// The actor number reserved for a file's script.
pub const SCRIPT: u32 = u32::MAX;

/// A scripted syslog line: program, pid and message.
#[derive(Clone, Debug)]
pub struct SysLine {
    pub prog: &'static str,
    pub pid: u32,
    pub msg: String,
}

/// A scripted container log line.
#[derive(Clone, Debug)]
pub struct CriLine {
    pub stderr: bool,
    pub msg: String,
}
