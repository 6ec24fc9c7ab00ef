//! Config parsing and validation: Stateline's files as they are, ganger's own keys, and the
//! messages bad files get.

use super::suggest::{did_you_mean, edit_distance};
use super::*;

/// Stateline's demo config, as the README and `src/bin` of NICTA/stateline give it.
const DEMO_JSON: &str = r#"{
  "nJobTypes": 3,
  "nStacks": 2,
  "nTemperatures": 5,
  "nSamplesTotal": 200000,
  "min": [-10, -10, -10, -10],
  "max": [10, 10, 10, 10],
  "swapInterval": 10,
  "optimalAcceptRate": 0.24,
  "optimalSwapRate": 0.24,
  "outputPath": "demo-output",
  "loggingRateSec": 1,
  "useInitial": false,
  "initial": [0, 0, 0, 0]
}"#;

const DEMO_TOML: &str = r#"
nJobTypes = 3
nStacks = 2
nTemperatures = 5
nSamplesTotal = 200000
min = [-10, -10, -10, -10]
max = [10, 10, 10, 10]
swapInterval = 10
optimalAcceptRate = 0.24
optimalSwapRate = 0.24
outputPath = "demo-output"
loggingRateSec = 1
useInitial = false
initial = [0, 0, 0, 0]
"#;

fn demo() -> McmcConfig {
    McmcConfig::parse(DEMO_JSON, "demo.json", ConfigFormat::Json).unwrap()
}

/// The demo config with `key` set to `value` (a JSON literal), or removed if `value` is
/// `None`; parsed as `demo.json`.
fn demo_with(key: &str, value: Option<&str>) -> Result<McmcConfig, ConfigError> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(DEMO_JSON).unwrap();
    match value {
        Some(value) => object.insert(key.to_owned(), serde_json::from_str(value).unwrap()),
        None => object.remove(key),
    };
    let text = serde_json::to_string_pretty(&object).unwrap();
    McmcConfig::parse(&text, "demo.json", ConfigFormat::Json)
}

/// Asserts that `result` is an error whose message contains every one of `parts`.
#[track_caller]
fn assert_error(result: Result<McmcConfig, ConfigError>, parts: &[&str]) {
    let message = match result {
        Ok(config) => panic!("expected an error containing {parts:?}, parsed {config:?}"),
        Err(error) => error.to_string(),
    };
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} does not contain {part:?}"
        );
    }
}

#[test]
fn config_stateline_demo_parses() {
    let config = demo();
    assert_eq!(config.n_job_types, 3);
    assert_eq!(config.n_stacks, 2);
    assert_eq!(config.n_temperatures, 5);
    assert_eq!(config.n_samples_total, 200_000);
    assert_eq!(config.min, vec![-10.0; 4]);
    assert_eq!(config.max, vec![10.0; 4]);
    assert_eq!(config.swap_interval, 10);
    assert_eq!(config.optimal_accept_rate, 0.24);
    assert_eq!(config.optimal_swap_rate, 0.24);
    assert_eq!(config.output_path, "demo-output");
    assert_eq!(config.logging_rate_sec, 1.0);
    assert!(!config.use_initial);
    assert_eq!(config.initial, Some(vec![0.0; 4]));
    assert_eq!(config.n_dims(), 4);
    assert_eq!(config.n_chains(), 10);
    assert_eq!(config.samples_per_chain(), 100_000);
    // ganger's own keys take their defaults.
    assert_eq!(config.heartbeat_timeout_sec, None);
    assert_eq!(config.seed, 42);
    assert_eq!(config.swap_scheme, SwapScheme::NonReversible);
    assert_eq!(config.checkpoint_interval_sec, 10.0);
    assert_eq!(config.likelihood, "gaussian");
    assert_eq!(config.max_temperature, 1000.0);
    assert_eq!(config.adaptation_steps, 50_000);
    assert_eq!(
        config.burn_in, 50_000,
        "the burn-in is the adaptation phase"
    );
}

#[test]
fn config_stateline_readme_example_parses() {
    // The README's example (its trailing comma removed: Stateline's own JSON reader
    // rejected it too), with `heartbeatTimeoutSec`, which Stateline also reads.
    let text = r#"{
"nJobTypes": 3,
"nStacks": 2,
"nTemperatures": 5,
"nSamplesTotal": 60000,

"min": [-10, 0, -10, -10],
"max": [ 10, 10, 10, 2],

"swapInterval": 10,
"optimalAcceptRate": 0.234,
"optimalSwapRate": 0.3874,

"outputPath": "demo-output",
"loggingRateSec": 1,
"heartbeatTimeoutSec": 15
}"#;
    let config = McmcConfig::parse(text, "readme.json", ConfigFormat::Json).unwrap();
    assert_eq!(config.min, [-10.0, 0.0, -10.0, -10.0]);
    assert_eq!(config.max, [10.0, 10.0, 10.0, 2.0]);
    assert_eq!(config.optimal_swap_rate, 0.3874);
    assert_eq!(config.heartbeat_timeout_sec, Some(15.0));
    assert_eq!(config.initial, None);
}

#[test]
fn config_toml_equals_json() {
    let toml = McmcConfig::parse(DEMO_TOML, "demo.toml", ConfigFormat::Toml).unwrap();
    assert_eq!(toml, demo());
}

#[test]
fn config_only_required_keys_take_defaults() {
    let text = r#"{"nJobTypes": 1, "nStacks": 3, "nTemperatures": 4, "nSamplesTotal": 1000,
                   "min": [0], "max": [1]}"#;
    let config = McmcConfig::parse(text, "small.json", ConfigFormat::Json).unwrap();
    assert_eq!(config.swap_interval, 10);
    assert_eq!(config.optimal_accept_rate, 0.234);
    assert_eq!(config.optimal_swap_rate, 0.234);
    assert_eq!(config.output_path, "output");
    assert_eq!(config.logging_rate_sec, 1.0);
    assert!(!config.use_initial);
    assert_eq!(config.initial, None);
    // 1000 over 3 stacks rounds up to 334 per chain; adaptation lasts half of that.
    assert_eq!(config.samples_per_chain(), 334);
    assert_eq!(config.adaptation_steps, 167);
}

#[test]
fn config_burn_in_defaults_to_the_adaptation_phase_and_leaves_a_draw() {
    assert_eq!(
        demo_with("adaptationSteps", Some("1200")).unwrap().burn_in,
        1200
    );
    let all = demo_with("adaptationSteps", Some("100000")).unwrap();
    assert_eq!(all.burn_in, 99_999);
    assert_eq!(demo_with("burnIn", Some("0")).unwrap().burn_in, 0);
}

#[test]
fn config_our_keys_parse() {
    let text = r#"
nJobTypes = 1
nStacks = 1
nTemperatures = 8
nSamplesTotal = 2e5
min = [-1.5, 0]
max = [1.5, 1]
useInitial = true
initial = [0.5, 1]
seed = 7
swapScheme = "classic"
checkpointIntervalSec = 0
likelihood = "rosenbrock"
maxTemperature = 50.0
adaptationSteps = 1000
burnIn = 2000
evidenceDraws = 0
"#;
    let config = McmcConfig::parse(text, "run.toml", ConfigFormat::Toml).unwrap();
    assert_eq!(
        config.n_samples_total, 200_000,
        "whole-valued floats are counts"
    );
    assert_eq!(config.seed, 7);
    assert_eq!(config.swap_scheme, SwapScheme::Classic);
    assert_eq!(config.checkpoint_interval_sec, 0.0);
    assert_eq!(config.likelihood, "rosenbrock");
    assert_eq!(config.max_temperature, 50.0);
    assert_eq!(config.adaptation_steps, 1000);
    assert_eq!(config.burn_in, 2000);
    assert_eq!(config.evidence_draws, 0);
    assert_eq!(config.initial, Some(vec![0.5, 1.0]));
}

#[test]
fn config_serde_round_trips_with_the_same_key_names() {
    let mut config = demo();
    config.heartbeat_timeout_sec = Some(15.0);
    config.names = Some(["a", "b", "c", "d"].map(String::from).to_vec());
    let json = serde_json::to_string(&config).unwrap();
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = KEYS.to_vec();
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    // The serialised form is itself a valid config file, and the same config.
    assert_eq!(
        McmcConfig::parse(&json, "checkpoint.json", ConfigFormat::Json).unwrap(),
        config
    );
    assert_eq!(serde_json::from_str::<McmcConfig>(&json).unwrap(), config);
    let toml = toml::to_string(&config).unwrap();
    assert_eq!(
        McmcConfig::parse(&toml, "checkpoint.toml", ConfigFormat::Toml).unwrap(),
        config
    );
}

#[test]
fn config_from_file_contents_chooses_by_extension() {
    let json = McmcConfig::from_file_contents(DEMO_JSON, Path::new("a/demo.json")).unwrap();
    let toml = McmcConfig::from_file_contents(DEMO_TOML, Path::new("a/demo.TOML")).unwrap();
    assert_eq!(json, toml);
    // Any other extension is read as JSON...
    let guessed = McmcConfig::from_file_contents(DEMO_JSON, Path::new("demo.conf")).unwrap();
    assert_eq!(guessed, json);
    // ...and a syntax error then says so.
    assert_error(
        McmcConfig::from_file_contents(DEMO_TOML, Path::new("demo.conf")),
        &[
            "config demo.conf: line 2",
            "invalid JSON",
            "read as JSON because",
        ],
    );
    assert_error(
        McmcConfig::from_file_contents(DEMO_TOML, Path::new("demo.json")),
        &["config demo.json: line 2", "invalid JSON"],
    );
    let error = McmcConfig::from_file_contents(DEMO_TOML, Path::new("demo.json")).unwrap_err();
    assert!(!error.to_string().contains("read as JSON because"));
}

#[test]
fn config_syntax_errors_name_the_file_and_line() {
    let missing_comma = DEMO_JSON.replace("\"nStacks\": 2,", "\"nStacks\": 2");
    let error = McmcConfig::parse(&missing_comma, "demo.json", ConfigFormat::Json).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::Syntax {
            location: Some((4, _)),
            format: ConfigFormat::Json,
            ..
        }
    ));
    assert_error(
        McmcConfig::parse(&missing_comma, "demo.json", ConfigFormat::Json),
        &["config demo.json: line 4, column 3: invalid JSON: expected `,` or `}`"],
    );
    // Stateline's README example ends in a trailing comma.
    assert_error(
        McmcConfig::parse("{\n\"nStacks\": 2,\n}", "readme.json", ConfigFormat::Json),
        &["config readme.json: line 3", "trailing comma"],
    );

    let bad_toml = DEMO_TOML.replace("nStacks = 2", "nStacks = ");
    let error = McmcConfig::parse(&bad_toml, "run.toml", ConfigFormat::Toml).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::Syntax {
            location: Some((3, _)),
            ..
        }
    ));
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message:?}");
    assert_error(
        Err(error),
        &["config run.toml: line 3, column 11: invalid TOML: invalid string; expected"],
    );
    assert_error(
        McmcConfig::parse("nStacks = 2\nnStacks = 3\n", "run.toml", ConfigFormat::Toml),
        &["config run.toml: line 2", "duplicate key"],
    );
}

#[test]
fn config_json_duplicate_keys_and_non_objects_are_rejected() {
    let twice = DEMO_JSON.replace("\"swapInterval\": 10,", "\"nStacks\": 3,");
    assert_error(
        McmcConfig::parse(&twice, "demo.json", ConfigFormat::Json),
        &["config demo.json: line 8", "key `nStacks` appears twice"],
    );
    assert_error(
        McmcConfig::parse("[1, 2]", "demo.json", ConfigFormat::Json),
        &["config demo.json: line 1, column 1: invalid JSON: invalid type: sequence, expected an object of configuration keys"],
    );
    assert_error(
        McmcConfig::parse("", "empty.json", ConfigFormat::Json),
        &["config empty.json", "EOF"],
    );
}

#[test]
fn config_unknown_keys_are_rejected_with_a_suggestion() {
    let text = DEMO_TOML.replace("nStacks", "nStack");
    let error = McmcConfig::parse(&text, "run.toml", ConfigFormat::Toml).unwrap_err();
    assert!(matches!(
        &error,
        ConfigError::UnknownKey { key, suggestion: Some("nStacks"), .. } if key == "nStack"
    ));
    assert_error(
        Err(error),
        &[
            "config run.toml: unknown key `nStack` (did you mean `nStacks`?)",
            "the known keys are nJobTypes, nStacks, nTemperatures",
            "adaptationSteps",
        ],
    );
    // Other spellings of a known key.
    for (typo, meant) in [
        ("n_stacks", "nStacks"),
        ("nsamplestotal", "nSamplesTotal"),
        ("nTemperaturesTotal", "nTemperatures"),
        ("output_path", "outputPath"),
        ("swapinterval", "swapInterval"),
    ] {
        assert_error(
            demo_with(typo, Some("1")),
            &[
                &format!("config demo.json: unknown key `{typo}`"),
                &format!("(did you mean `{meant}`?)"),
            ],
        );
    }
    // No suggestion when nothing is close.
    let error = demo_with("verbose", Some("true")).unwrap_err().to_string();
    assert!(
        error.contains("unknown key `verbose`; the known keys are"),
        "{error}"
    );
}

#[test]
fn config_missing_required_keys_are_named() {
    for key in [
        "nJobTypes",
        "nStacks",
        "nTemperatures",
        "nSamplesTotal",
        "min",
        "max",
    ] {
        assert_error(
            demo_with(key, None),
            &[&format!("config demo.json: missing required key `{key}`")],
        );
    }
}

#[test]
fn config_wrong_types_are_named() {
    for (key, value, parts) in [
        (
            "nStacks",
            r#""two""#,
            &["expected a whole number, found the string \"two\""][..],
        ),
        ("nStacks", "2.5", &["expected a whole number, found 2.5"]),
        ("nStacks", "-2", &["must not be negative, found -2"]),
        (
            "nSamplesTotal",
            "null",
            &["expected a whole number, found null"],
        ),
        (
            "min",
            r#""abc""#,
            &["expected an array of numbers, found the string \"abc\""],
        ),
        (
            "max",
            r#"[1, 2, "x", 4]"#,
            &["found the string \"x\" at index 2"],
        ),
        ("useInitial", "1", &["expected true or false, found 1"]),
        ("outputPath", "3", &["expected a string, found 3"]),
        (
            "optimalAcceptRate",
            "[0.2]",
            &["expected a number, found an array"],
        ),
        ("seed", "{}", &["expected a whole number, found an object"]),
    ] {
        let mut expected = vec![format!("config demo.json: key `{key}`: ")];
        expected.extend(parts.iter().map(|p| p.to_string()));
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_error(demo_with(key, Some(value)), &expected);
    }
}

#[test]
fn config_inconsistent_values_are_rejected() {
    for (key, value, part) in [
        (
            "nJobTypes",
            "0",
            "key `nJobTypes`: must be at least 1, found 0",
        ),
        ("nStacks", "0", "key `nStacks`: must be at least 1, found 0"),
        (
            "nTemperatures",
            "0",
            "key `nTemperatures`: must be at least 1, found 0",
        ),
        (
            "nSamplesTotal",
            "1",
            "key `nSamplesTotal`: 1 is fewer than `nStacks` = 2",
        ),
        (
            "max",
            "[10, 10, 10]",
            "key `min`: has 4 entries but `max` has 3",
        ),
        (
            "min",
            "[-10, -10, 10, -10]",
            "key `min`: entry 2 (10) is not below entry 2 of `max` (10)",
        ),
        (
            "min",
            "[-10, 11, -10, -10]",
            "key `min`: entry 1 (11) is not below entry 1 of `max` (10)",
        ),
        (
            "initial",
            "[0, 0, 10.5, 0]",
            "key `initial`: entry 2 (10.5) is outside [-10, 10]",
        ),
        (
            "initial",
            "[0, 0, 0]",
            "key `initial`: has 3 entries but `min` and `max` have 4",
        ),
        (
            "swapInterval",
            "0",
            "key `swapInterval`: must be at least 1",
        ),
        (
            "optimalAcceptRate",
            "0",
            "key `optimalAcceptRate`: must be a rate strictly between 0 and 1, found 0",
        ),
        (
            "optimalAcceptRate",
            "1",
            "key `optimalAcceptRate`: must be a rate strictly between 0 and 1, found 1",
        ),
        (
            "optimalSwapRate",
            "1.5",
            "key `optimalSwapRate`: must be a rate strictly between 0 and 1, found 1.5",
        ),
        (
            "optimalSwapRate",
            "-0.1",
            "key `optimalSwapRate`: must be a rate strictly between 0 and 1, found -0.1",
        ),
        (
            "outputPath",
            r#""""#,
            "key `outputPath`: must name a folder",
        ),
        (
            "loggingRateSec",
            "0",
            "key `loggingRateSec`: must be a positive number of seconds, found 0",
        ),
        (
            "heartbeatTimeoutSec",
            "-1",
            "key `heartbeatTimeoutSec`: must be a positive number",
        ),
        (
            "checkpointIntervalSec",
            "-1",
            "key `checkpointIntervalSec`: must be a number of seconds ≥ 0",
        ),
        (
            "maxTemperature",
            "0.5",
            "key `maxTemperature`: must be a finite temperature ≥ 1",
        ),
        (
            "maxTemperature",
            "1",
            "key `maxTemperature`: must be above 1 when `nTemperatures` is 5",
        ),
        (
            "adaptationSteps",
            "100001",
            "key `adaptationSteps`: 100001 is more than the 100000 steps",
        ),
        (
            "evidenceDraws",
            "1000001",
            "key `evidenceDraws`: 1000001 is more than 1000000",
        ),
        (
            "burnIn",
            "100000",
            "key `burnIn`: 100000 leaves no draws: each chain makes 100000 steps",
        ),
        (
            "swapScheme",
            r#""nonreversable""#,
            r#"key `swapScheme`: unknown value "nonreversable" (did you mean "nonreversible"?); expected one of "classic", "nonreversible""#,
        ),
        (
            "swapScheme",
            r#""Non-Reversible""#,
            r#"(did you mean "nonreversible"?)"#,
        ),
        (
            "likelihood",
            r#""plates/rotation""#,
            r#"key `likelihood`: "plates/rotation" is not a likelihood name"#,
        ),
    ] {
        assert_error(demo_with(key, Some(value)), &["config demo.json: ", part]);
    }
    assert_error(
        demo_with("min", Some("[]")),
        &["config demo.json: key `min`: has 0 entries but `max` has 4"],
    );
    // An initial point is needed when it is to be used.
    let text = DEMO_JSON.replace("\"useInitial\": false", "\"useInitial\": true");
    assert!(McmcConfig::parse(&text, "demo.json", ConfigFormat::Json).is_ok());
    let text = text.replace(",\n  \"initial\": [0, 0, 0, 0]", "");
    assert_error(
        McmcConfig::parse(&text, "demo.json", ConfigFormat::Json),
        &["config demo.json: key `initial`: is required because `useInitial` is true"],
    );
    // One temperature needs no ladder, so maxTemperature 1 is fine there.
    let text = DEMO_TOML.replace("nTemperatures = 5", "nTemperatures = 1\nmaxTemperature = 1");
    let config = McmcConfig::parse(&text, "run.toml", ConfigFormat::Toml).unwrap();
    assert_eq!(config.initial_temperatures(), [1.0]);
}

#[test]
fn config_empty_and_non_finite_bounds_are_rejected() {
    let empty = "nJobTypes = 1\nnStacks = 1\nnTemperatures = 1\nnSamplesTotal = 10\n\
                 min = []\nmax = []\n";
    assert_error(
        McmcConfig::parse(empty, "run.toml", ConfigFormat::Toml),
        &["config run.toml: key `min`: is empty"],
    );
    // JSON cannot spell NaN or infinity, TOML can.
    for (min, max, part) in [
        (
            "[nan, 0]",
            "[1, 1]",
            "key `min`: entry 0 is NaN: bounds must be finite",
        ),
        (
            "[0, 0]",
            "[1, inf]",
            "key `max`: entry 1 is inf: bounds must be finite",
        ),
        ("[-inf, 0]", "[1, 1]", "key `min`: entry 0 is -inf"),
    ] {
        let text = empty.replace("min = []", &format!("min = {min}"));
        let text = text.replace("max = []", &format!("max = {max}"));
        assert_error(
            McmcConfig::parse(&text, "run.toml", ConfigFormat::Toml),
            &["config run.toml: ", part],
        );
    }
    let text = DEMO_TOML.replace("initial = [0, 0, 0, 0]", "initial = [0, nan, 0, 0]");
    assert_error(
        McmcConfig::parse(&text, "run.toml", ConfigFormat::Toml),
        &["config run.toml: key `initial`: entry 1 (NaN) is outside [-10, 10]"],
    );
    let text = DEMO_TOML.replace("optimalSwapRate = 0.24", "optimalSwapRate = nan");
    assert_error(
        McmcConfig::parse(&text, "run.toml", ConfigFormat::Toml),
        &["config run.toml: key `optimalSwapRate`: must be a rate strictly between 0 and 1"],
    );
}

#[test]
fn config_validate_checks_a_config_built_in_code() {
    let mut config = demo();
    assert!(config.validate().is_ok());
    config.n_stacks = 0;
    assert_eq!(config.samples_per_chain(), 200_000, "no division by zero");
    let message = config.validate().unwrap_err().to_string();
    assert!(
        message.contains("config (unnamed config): key `nStacks`"),
        "{message}"
    );
    let message = config.validate_as("checkpoint").unwrap_err().to_string();
    assert!(
        message.contains("config checkpoint: key `nStacks`"),
        "{message}"
    );
}

#[test]
fn config_initial_temperatures_are_geometric() {
    let ladder = demo().initial_temperatures();
    assert_eq!(ladder.len(), 5);
    assert_eq!(ladder[0], 1.0);
    assert_eq!(ladder[4], 1000.0);
    for pair in ladder.windows(2) {
        let ratio = pair[1] / pair[0];
        assert!((ratio - 1000f64.powf(0.25)).abs() < 1e-9, "{ladder:?}");
    }
}

#[test]
fn config_edit_distance_and_suggestions() {
    let chars = |s: &str| s.chars().collect::<Vec<_>>();
    assert_eq!(edit_distance(&chars("kitten"), &chars("sitting")), 3);
    assert_eq!(edit_distance(&chars(""), &chars("abc")), 3);
    assert_eq!(edit_distance(&chars("abc"), &chars("abc")), 0);
    assert_eq!(edit_distance(&chars("nStack"), &chars("nStacks")), 1);
    assert_eq!(did_you_mean("mx", &KEYS), Some("max"));
    assert_eq!(did_you_mean("seeed", &KEYS), Some("seed"));
    assert_eq!(did_you_mean("temperature", &KEYS), Some("nTemperatures"));
    assert_eq!(did_you_mean("port", &KEYS), None);
}

#[test]
fn config_names_label_the_dimensions_and_default_to_x_and_the_index() {
    assert_eq!(demo().dim_names(), ["x0", "x1", "x2", "x3"]);
    let named = demo_with("names", Some(r#"["lat", "lon", "angle (deg)", "σ"]"#)).unwrap();
    assert_eq!(named.dim_names(), ["lat", "lon", "angle (deg)", "σ"]);
    // A checkpoint stores the config: the names survive the round trip, and a config stored
    // before the key existed still reads.
    let stored = serde_json::to_string(&named).unwrap();
    assert_eq!(serde_json::from_str::<McmcConfig>(&stored).unwrap(), named);
    let old = serde_json::to_string(&demo()).unwrap();
    assert!(!old.contains("names"), "{old}");
    assert_eq!(serde_json::from_str::<McmcConfig>(&old).unwrap(), demo());
}

#[test]
fn config_names_that_would_break_a_chain_file_or_a_table_are_refused() {
    let cases = [
        (
            r#"["a", "b", "c"]"#,
            "has 3 entries but `min` and `max` have 4",
        ),
        (r#"["a", "b", "c", "a"]"#, "entry 3 (\"a\") repeats entry 0"),
        (
            r#"["a", "b,c", "d", "e"]"#,
            "entry 1 (\"b,c\") contains ','",
        ),
        (r#"["a", "b", "\"q\"", "e"]"#, "contains '\"'"),
        (r#"["a", "b", "c\nd", "e"]"#, "contains '\\n'"),
        (r#"["a", "", "c", "d"]"#, "entry 1 (\"\") is empty"),
        (
            r#"["a", " b", "c", "d"]"#,
            "starts or ends with white space",
        ),
        (
            r#"["a", "b", "beta", "d"]"#,
            "is a column the chain files already have",
        ),
        (r#"["a", "b", "c", 4]"#, "an array of strings"),
        (r#""abcd""#, "an array of strings"),
    ];
    for (value, message) in cases {
        assert_error(
            demo_with("names", Some(value)),
            &["demo.json", "key `names`", message],
        );
    }
    let long = format!(r#"["a", "b", "c", "{}"]"#, "n".repeat(65));
    assert_error(
        demo_with("names", Some(&long)),
        &["key `names`", "longer than 64 characters"],
    );
}
