//! Tasks: the functions workers evaluate units with, and the registry that names them.
//!
//! A unit's job type is the name of a task in the worker's [`Registry`].
//! A task maps an input payload to an output payload or an error message;
//! [`Registry::run`] also turns a panic inside a task into that unit's error.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::mcmc::likelihood::{Builtin, Likelihood, Unit};
use crate::payload;
use crate::protocol::job_type_matches;

/// A unit's outcome as a task produces it: an output payload or an error message.
pub type TaskResult = Result<Vec<u8>, String>;

/// A function from an input payload to an output payload, evaluated on worker threads.
///
/// The output is appended to a buffer the caller owns, so that a worker's hot loop evaluates a
/// whole chunk of units into one allocation instead of one per unit.
pub trait Task: Send + Sync + 'static {
    /// Evaluates one unit, appending its output payload to `output`; on `Err` whatever was
    /// appended is discarded by the caller.
    fn run(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), String>;

    /// Evaluates one unit of job type `job_type`, like [`Task::run`]; what a worker's hot loop
    /// calls. A task serving several job types under one pattern (`mcmc/NAME/*`, or a program
    /// behind `ganger-worker --exec`) overrides it to learn which one; the default ignores it.
    fn run_unit(&self, job_type: &str, input: &[u8], output: &mut Vec<u8>) -> Result<(), String> {
        let _ = job_type;
        self.run(input, output)
    }
}

impl<F> Task for F
where
    F: Fn(&[u8], &mut Vec<u8>) -> Result<(), String> + Send + Sync + 'static,
{
    fn run(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), String> {
        self(input, output)
    }
}

/// The tasks a worker serves, by job type.
#[derive(Clone, Default)]
pub struct Registry {
    tasks: BTreeMap<String, Arc<dyn Task>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.tasks.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// A registry holding the built-in tasks (see [`BUILTIN_TASKS`]).
    pub fn with_builtins() -> Self {
        let mut registry = Registry::new();
        registry
            .register_raw("noop", |input: &[u8], output: &mut Vec<u8>| {
                output.extend_from_slice(input);
                Ok(())
            })
            .register("sleep", |micros: u64| {
                std::thread::sleep(Duration::from_micros(micros));
                micros
            })
            .register("spin", |micros: u64| {
                let until = Instant::now() + Duration::from_micros(micros);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                micros
            })
            .register_raw("square", square)
            .register("panic-if-odd", |n: i64| {
                if n % 2 != 0 {
                    panic!("panic-if-odd: input {n} is odd");
                }
                n
            });
        for builtin in [Builtin::Gaussian, Builtin::Bimodal, Builtin::Rosenbrock] {
            let name = format!("mcmc/{}/*", builtin.name());
            registry.register_raw(name, move |input: &[u8], output: &mut Vec<u8>| {
                let unit = Unit::decode(input)?;
                let split = builtin.split(unit.n_terms);
                unit.evaluate(|term, _, x| split.energy(term, x), output);
                Ok(())
            });
        }
        registry
    }

    /// Serves every term of an MCMC likelihood under `mcmc/NAME/*` (the job types of a
    /// distributed run whose config says `"likelihood": "NAME"`; see PROTOCOL.md, MCMC units).
    /// A unit whose term count differs from `likelihood`'s fails with a message saying so.
    pub fn register_likelihood(
        &mut self,
        name: &str,
        likelihood: impl Likelihood + 'static,
    ) -> &mut Self {
        self.register_raw(
            format!("mcmc/{name}/*"),
            move |input: &[u8], output: &mut Vec<u8>| {
                let unit = Unit::decode(input)?;
                if unit.n_terms != likelihood.n_job_types() {
                    return Err(format!(
                        "the run splits the likelihood into {} terms; this worker's has {}",
                        unit.n_terms,
                        likelihood.n_job_types()
                    ));
                }
                unit.evaluate(|term, _, x| likelihood.energy(term, x), output);
                Ok(())
            },
        )
    }

    /// Registers a task working on raw payload bytes under `name`, replacing any earlier one.
    pub fn register_raw(&mut self, name: impl Into<String>, task: impl Task) -> &mut Self {
        self.tasks.insert(name.into(), Arc::new(task));
        self
    }

    /// Registers a typed function: inputs and outputs travel as MessagePack (see [`payload`]).
    /// An input that does not decode as `I` fails that unit with a message saying so.
    pub fn register<I, O, F>(&mut self, name: impl Into<String>, function: F) -> &mut Self
    where
        I: DeserializeOwned,
        O: Serialize,
        F: Fn(I) -> O + Send + Sync + 'static,
    {
        let name = name.into();
        let task = name.clone();
        self.register_raw(name, move |input: &[u8], output: &mut Vec<u8>| {
            let input: I = payload::from_bytes(input)
                .map_err(|e| payload::input_error::<I>(&task, input, &e))?;
            payload::write(output, &function(input)).map_err(|e| e.to_string())
        })
    }

    /// Registers a typed fallible function: an `Err` fails the unit with its message.
    pub fn register_fallible<I, O, E, F>(
        &mut self,
        name: impl Into<String>,
        function: F,
    ) -> &mut Self
    where
        I: DeserializeOwned,
        O: Serialize,
        E: std::fmt::Display,
        F: Fn(I) -> Result<O, E> + Send + Sync + 'static,
    {
        let name = name.into();
        let task = name.clone();
        self.register_raw(name, move |input: &[u8], output: &mut Vec<u8>| {
            let input: I = payload::from_bytes(input)
                .map_err(|e| payload::input_error::<I>(&task, input, &e))?;
            let value = function(input).map_err(|e| e.to_string())?;
            payload::write(output, &value).map_err(|e| e.to_string())
        })
    }

    /// The task for `job_type`: registered under that name, or else under the longest pattern
    /// ending in `*` that covers it (see [`job_type_matches`]).
    pub fn get(&self, job_type: &str) -> Option<&Arc<dyn Task>> {
        self.tasks.get(job_type).or_else(|| {
            self.tasks
                .iter()
                .filter(|(name, _)| name.ends_with('*') && job_type_matches(name, job_type))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, task)| task)
        })
    }

    /// The registered job types, sorted.
    pub fn job_types(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// Keeps only the job types `keep` returns true for.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.tasks.retain(|name, _| keep(name));
    }

    /// Evaluates one unit; an unknown job type or a panic becomes the unit's error.
    pub fn run(&self, job_type: &str, input: &[u8]) -> TaskResult {
        let mut output = Vec::new();
        self.run_into(job_type, input, &mut output)?;
        Ok(output)
    }

    /// Evaluates one unit, appending its output to `output` (left as it was on error).
    pub fn run_into(
        &self,
        job_type: &str,
        input: &[u8],
        output: &mut Vec<u8>,
    ) -> Result<(), String> {
        match self.get(job_type) {
            Some(task) => run_caught(task.as_ref(), job_type, input, output),
            None => Err(no_such_task(job_type)),
        }
    }
}

/// The built-in tasks every `ganger-worker` serves, with what they do.
pub const BUILTIN_TASKS: &[(&str, &str)] = &[
    ("noop", "returns its input unchanged"),
    (
        "sleep",
        "sleeps for the input number of microseconds, returns it",
    ),
    (
        "spin",
        "busy-waits for the input number of microseconds, returns it",
    ),
    ("square", "returns the square of an integer or float input"),
    (
        "panic-if-odd",
        "panics on an odd integer, returns an even one (for testing retries)",
    ),
    (
        "mcmc/gaussian/*",
        "a term of the built-in Gaussian likelihood: [term, n_terms, x] -> energy",
    ),
    (
        "mcmc/bimodal/*",
        "a term of the built-in bimodal likelihood",
    ),
    (
        "mcmc/rosenbrock/*",
        "a term of the built-in Rosenbrock likelihood",
    ),
];

/// Runs a task on one unit of `job_type` ([`Task::run_unit`]), appending to `output`; a panic
/// becomes an error message, and on any error `output` is truncated back to where it was.
pub fn run_caught(
    task: &dyn Task,
    job_type: &str,
    input: &[u8],
    output: &mut Vec<u8>,
) -> Result<(), String> {
    let start = output.len();
    let result = match catch_unwind(AssertUnwindSafe(|| task.run_unit(job_type, input, output))) {
        Ok(result) => result,
        Err(panic) => Err(format!("task panicked: {}", panic_message(&*panic))),
    };
    if result.is_err() {
        output.truncate(start);
    }
    result
}

/// The error of a unit whose job type the worker does not serve.
pub fn no_such_task(job_type: &str) -> String {
    format!("this worker has no task `{job_type}`")
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "(a non-string panic value)"
    }
}

fn square(input: &[u8], output: &mut Vec<u8>) -> Result<(), String> {
    if let Ok(n) = payload::from_bytes::<i64>(input) {
        let squared = n
            .checked_mul(n)
            .ok_or_else(|| format!("square: {n}² overflows a 64-bit integer"))?;
        return payload::write(output, &squared).map_err(|e| e.to_string());
    }
    let x: f64 =
        payload::from_bytes(input).map_err(|e| payload::input_error::<f64>("square", input, &e))?;
    payload::write(output, &(x * x)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<I: Serialize, O: DeserializeOwned>(job_type: &str, input: I) -> Result<O, String> {
        let registry = Registry::with_builtins();
        let output = registry.run(job_type, &payload::to_bytes(&input).unwrap())?;
        Ok(payload::from_bytes(&output).unwrap())
    }

    #[test]
    fn builtins_compute_what_they_say() {
        assert_eq!(run::<_, i64>("square", 12), Ok(144));
        assert_eq!(run::<_, f64>("square", 1.5), Ok(2.25));
        assert_eq!(run::<_, u64>("noop", 99u64), Ok(99));
        assert_eq!(run::<_, u64>("spin", 10u64), Ok(10));
        assert_eq!(run::<_, u64>("sleep", 10u64), Ok(10));
        assert_eq!(run::<_, i64>("panic-if-odd", 4), Ok(4));
        let names: Vec<_> = BUILTIN_TASKS.iter().map(|(name, _)| *name).collect();
        assert_eq!(Registry::with_builtins().job_types().len(), names.len());
    }

    #[test]
    fn likelihood_terms_are_served_through_wildcard_job_types() {
        use crate::mcmc::likelihood::{job_type_name, read_energies, unit_payload, FnLikelihood};
        let registry = Registry::with_builtins();
        let points = [[3.0, 4.0], [0.0, 1.0], [-2.0, 0.0]];
        let payload = unit_payload(1, 2, points.iter().map(|x| &x[..]));
        let output = registry
            .run(&job_type_name("gaussian", 1), &payload)
            .unwrap();
        let mut energies = [0.0; 3];
        read_energies(&output, &mut energies).unwrap();
        // Halves of 0.5 * |x|².
        assert_eq!(energies, [6.25, 0.25, 1.0]);
        assert!(registry.get("mcmc/nonesuch/0").is_none());
        assert!(
            registry.get("mcmc/gaussian").is_none(),
            "the pattern needs the slash"
        );
        let mut mine = Registry::new();
        mine.register_likelihood("line", FnLikelihood::new(2, |t, x: &[f64]| t as f64 + x[0]));
        let output = mine.run("mcmc/line/1", &payload).unwrap();
        read_energies(&output, &mut energies).unwrap();
        assert_eq!(energies, [4.0, 1.0, -1.0]);
        let three_terms = unit_payload(0, 3, points.iter().map(|x| &x[..]));
        let error = mine.run("mcmc/line/0", &three_terms).unwrap_err();
        assert!(error.contains("3 terms; this worker's has 2"), "{error}");
        for garbage in [&b"\x93\x05\x02\x90"[..], b"\x92\x00\x01", b"\xc0", b""] {
            let error = mine.run("mcmc/line/0", garbage).unwrap_err();
            assert!(error.contains("not an MCMC unit"), "{garbage:?}: {error}");
        }
        assert!(read_energies(&output, &mut [0.0; 2]).is_err());
    }

    #[test]
    fn a_task_serving_a_pattern_learns_each_unit_job_type() {
        struct Echo;
        impl Task for Echo {
            fn run(&self, _: &[u8], _: &mut Vec<u8>) -> Result<(), String> {
                Err("run_unit should have been called".into())
            }
            fn run_unit(
                &self,
                job_type: &str,
                _: &[u8],
                output: &mut Vec<u8>,
            ) -> Result<(), String> {
                output.extend_from_slice(job_type.as_bytes());
                Ok(())
            }
        }
        let mut registry = Registry::new();
        registry.register_raw("echo/*", Echo);
        assert_eq!(registry.run("echo/left", b""), Ok(b"echo/left".to_vec()));
        // Tasks that do not override it still see `run`.
        assert_eq!(Registry::with_builtins().run("noop", b"\x05"), Ok(vec![5]));
    }

    #[test]
    fn panics_and_bad_inputs_become_unit_errors() {
        let error = run::<_, i64>("panic-if-odd", 3).unwrap_err();
        assert!(error.contains("input 3 is odd"), "{error}");
        let error = run::<_, i64>("square", i64::MAX).unwrap_err();
        assert!(error.contains("overflows"), "{error}");
        let error = run::<_, u64>("sleep", "soon").unwrap_err();
        assert_eq!(error, "sleep expects an integer, got the string \"soon\"");
        let error = run::<_, u64>("no-such-task", 1).unwrap_err();
        assert!(error.contains("no task `no-such-task`"), "{error}");
    }
}
