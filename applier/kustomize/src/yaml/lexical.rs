//! The scalar forms YAML resolvers type (floats, YAML 1.1 numbers and timestamps), matched by
//! hand. They were regexes; compiling them was a fifth of a small build's CPU time (each
//! `ferry-kustomize` run is a new process). The regexes stay in the tests as the oracle.

/// A cursor over ASCII bytes.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn new(s: &'a str) -> Self {
        Cur {
            b: s.as_bytes(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Takes one byte if `f` accepts it.
    fn eat(&mut self, f: impl Fn(u8) -> bool) -> bool {
        let hit = self.peek().is_some_and(f);
        self.i += usize::from(hit);
        hit
    }

    /// Takes every byte `f` accepts; returns how many.
    fn many(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        self.i - start
    }

    fn sign(&mut self) {
        self.eat(|c| c == b'-' || c == b'+');
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn digit_(c: u8) -> bool {
    c.is_ascii_digit() || c == b'_'
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`: what Go's YAML decoder reads as
/// a float.
pub fn is_float(s: &str) -> bool {
    let mut c = Cur::new(s);
    c.sign();
    if c.eat(|b| b == b'.') {
        if c.many(digit) == 0 {
            return false;
        }
    } else {
        if c.many(digit) == 0 {
            return false;
        }
        if c.eat(|b| b == b'.') {
            c.many(digit);
        }
    }
    exponent(&mut c) && c.done()
}

/// An optional `[eE][-+]?[0-9]+`; false when it starts but is incomplete.
fn exponent(c: &mut Cur<'_>) -> bool {
    if c.eat(|b| b == b'e' || b == b'E') {
        c.sign();
        return c.many(digit) > 0;
    }
    true
}

/// Would a YAML 1.1 or 1.2 resolver read `s` as a number or a timestamp (integers in any
/// base, floats, sexagesimals, dates)?
pub fn is_typed_number(s: &str) -> bool {
    radix(
        s,
        |c| c == b'x' || c == b'X',
        |c| c.is_ascii_hexdigit() || c == b'_',
        true,
    ) || radix(
        s,
        |c| c == b'o' || c == b'O',
        |c| matches!(c, b'0'..=b'7' | b'_'),
        false,
    ) || radix(
        s,
        |c| c == b'b' || c == b'B',
        |c| matches!(c, b'0' | b'1' | b'_'),
        true,
    ) || decimal(s)
        || sexagesimal(s)
        || timestamp(s)
}

/// `[-+]?0<marker><digits>+`; the marker is optional when `required` is false (octal `0755`).
fn radix(
    s: &str,
    marker: impl Fn(u8) -> bool,
    digits: impl Fn(u8) -> bool,
    required: bool,
) -> bool {
    let mut c = Cur::new(s);
    c.sign();
    if !c.eat(|b| b == b'0') || (!c.eat(marker) && required) {
        return false;
    }
    c.many(digits) > 0 && c.done()
}

/// `[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?`
fn decimal(s: &str) -> bool {
    let mut c = Cur::new(s);
    c.sign();
    if c.eat(|b| b == b'.') {
        if c.many(digit_) == 0 {
            return false;
        }
    } else {
        if !c.eat(digit) {
            return false;
        }
        c.many(digit_);
        if c.eat(|b| b == b'.') {
            c.many(digit_);
        }
    }
    exponent(&mut c) && c.done()
}

/// `[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?`
fn sexagesimal(s: &str) -> bool {
    let mut c = Cur::new(s);
    c.sign();
    if !c.eat(digit) {
        return false;
    }
    c.many(digit_);
    let mut groups = 0;
    while c.eat(|b| b == b':') {
        let start = c.i;
        let n = c.many(digit);
        if !(n == 1 || (n == 2 && c.b[start] <= b'5')) {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if c.eat(|b| b == b'.') {
        c.many(digit_);
    }
    c.done()
}

/// `[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}` with an optional time
/// `(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?` and zone
/// `(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?`.
fn timestamp(s: &str) -> bool {
    let mut c = Cur::new(s);
    let run = |c: &mut Cur<'_>, lo: usize, hi: usize| (lo..=hi).contains(&c.many(digit));
    if !(run(&mut c, 4, 4) && c.eat(|b| b == b'-') && run(&mut c, 1, 2)) {
        return false;
    }
    if !(c.eat(|b| b == b'-') && run(&mut c, 1, 2)) {
        return false;
    }
    if c.done() {
        return true;
    }
    let blank = |b: u8| b == b' ' || b == b'\t';
    if !(c.eat(|b| b == b'T' || b == b't') || c.many(blank) > 0) {
        return false;
    }
    if !(run(&mut c, 1, 2)
        && c.eat(|b| b == b':')
        && run(&mut c, 2, 2)
        && c.eat(|b| b == b':')
        && run(&mut c, 2, 2))
    {
        return false;
    }
    if c.eat(|b| b == b'.') {
        c.many(digit);
    }
    if c.done() {
        return true;
    }
    c.many(blank);
    if c.eat(|b| b == b'Z') {
        return c.done();
    }
    if !(c.eat(|b| b == b'-' || b == b'+') && run(&mut c, 1, 2)) {
        return false;
    }
    if c.eat(|b| b == b':') && !run(&mut c, 2, 2) {
        return false;
    }
    c.done()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOAT: &str = r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$";
    const TYPED: &str = concat!(
        r"^(?:",
        r"[-+]?0[xX][0-9a-fA-F_]+",
        r"|[-+]?0[oO]?[0-7_]+",
        r"|[-+]?0[bB][01_]+",
        r"|[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?",
        r")$"
    );

    /// Every string over the forms' alphabet up to a length, plus random longer ones: the
    /// matchers agree with the regexes they replace.
    #[test]
    fn the_matchers_agree_with_the_regexes() {
        let float = regex::Regex::new(FLOAT).expect("regex");
        let typed = regex::Regex::new(TYPED).expect("regex");
        let check = |s: &str| {
            assert_eq!(is_float(s), float.is_match(s), "float {s:?}");
            assert_eq!(is_typed_number(s), typed.is_match(s), "typed {s:?}");
        };
        let short = b"0159_.:-+eExob";
        let mut buf = Vec::new();
        fn all(buf: &mut Vec<u8>, alphabet: &[u8], left: usize, check: &dyn Fn(&str)) {
            check(std::str::from_utf8(buf).expect("ascii"));
            if left == 0 {
                return;
            }
            for &c in alphabet {
                buf.push(c);
                all(buf, alphabet, left - 1, check);
                buf.pop();
            }
        }
        all(&mut buf, short, 4, &check);
        for s in [
            "2001-12-14",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2002-12-14T01:02:03Z",
            "2002-1-1\t1:02:03.5 +01:30",
            "2002-12-14T01:02:03 Z",
            "2002-12-14T01:02:03+1:3",
            "12345-1-1",
            "190:20:30.15",
            "1:60",
            "1:5a",
            "0x_1F",
            "0o17",
            "0755",
            "0b101",
            "-0b",
            "+.5e-3",
            "1_000.5e+10",
            "6.8523015e+5",
            ".e1",
        ] {
            check(s);
        }
        // Random strings and random mutations of the examples, deterministic.
        let wide = b"0123456789_.:-+eEoOxXbBaAfFTtZ \t";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let examples: Vec<&[u8]> = vec![
            b"2001-12-14t21:59:43.10-05:00",
            b"2002-1-1\t1:02:03.5 +01:30",
            b"190:20:30.15",
            b"1_000.5e+10",
            b"0x_1F",
        ];
        for _ in 0..300_000 {
            let s: Vec<u8> = if next(2) == 0 {
                (0..next(26)).map(|_| wide[next(wide.len())]).collect()
            } else {
                let mut s = examples[next(examples.len())].to_vec();
                for _ in 0..=next(3) {
                    let at = next(s.len());
                    match next(3) {
                        0 => s[at] = wide[next(wide.len())],
                        1 => s.insert(at, wide[next(wide.len())]),
                        _ => {
                            s.remove(at);
                        }
                    }
                    if s.is_empty() {
                        break;
                    }
                }
                s
            };
            check(std::str::from_utf8(&s).expect("ascii"));
        }
    }
}
