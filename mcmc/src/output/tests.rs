//! Chain files written, resumed and read back, including the damaged files a killed run or a
//! stray file leaves.

use super::*;
use ganger_core::mcmc::sampler::SwapType;

fn row(chain: usize, x: f64) -> Row {
    Row {
        chain,
        state: vec![x, -x],
        energy: 0.1 + x,
        sigma: 1.0 / 3.0,
        beta: 1.0,
        accepted: true,
        swap_type: SwapType::Reject,
    }
}

#[test]
fn rows_round_trip_exactly_and_resume_cuts_back_to_the_checkpoint() {
    let dir = std::env::temp_dir().join(format!("ganger-output-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut files = ChainFiles::create(&dir, 2, &["x0".into(), "x1".into()]).unwrap();
    files.write(&[row(0, 0.1), row(1, 1e-300)]).unwrap();
    let lengths = files.sync().unwrap();
    files.write(&[row(0, 7.0)]).unwrap();
    files.flush().unwrap();
    drop(files);
    let text = std::fs::read_to_string(ChainFiles::path(&dir, 0)).unwrap();
    assert_eq!(
        text,
        "x0,x1,energy,sigma,beta,accepted,swap_type\n\
         0.1,-0.1,0.2,0.3333333333333333,1.0,1,2\n\
         7.0,-7.0,7.1,0.3333333333333333,1.0,1,2\n"
    );
    let mut files = ChainFiles::resume(&dir, &lengths).unwrap();
    files.write(&[row(0, 2.5)]).unwrap();
    files.flush().unwrap();
    let states = read_states(&ChainFiles::path(&dir, 0), 2).unwrap();
    assert_eq!(states, vec![vec![0.1, 2.5], vec![-0.1, -2.5]]);
    let tiny = read_states(&ChainFiles::path(&dir, 1), 2).unwrap();
    assert_eq!(tiny[0][0], 1e-300);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_output_error_says_its_reason_once_when_printed_as_a_chain() {
    let path = chain_file("twice", "x0,energy,sigma,beta,accepted,swap_type\n1,2\n");
    let error = anyhow::Error::from(read_chain(&path).unwrap_err());
    let message = format!("{error:#}");
    assert_eq!(
        message,
        format!("{}: line 2: expected 6 fields, found 2", path.display())
    );
}

/// Writes `text` as a chain file in a fresh folder named after the test.
fn chain_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-read-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("0.csv");
    std::fs::write(&path, text).unwrap();
    path
}

const HEADER: &str = "x0,x1,energy,sigma,beta,accepted,swap_type\n";

#[test]
fn a_cut_off_last_line_is_ignored_and_a_whole_one_kept() {
    let cut = chain_file(
        "cut",
        &format!("{HEADER}1.5,2.5,0.1,0.3,1.0,1,0\n3.5,4.5,0.2,0.3,1.0,0,1\n5.5,6"),
    );
    assert_eq!(
        read_chain(&cut).unwrap(),
        vec![vec![1.5, 3.5], vec![2.5, 4.5]]
    );
    let whole = chain_file("whole", &format!("{HEADER}1.5,2.5,0.1,0.3,1.0,1,0"));
    assert_eq!(read_chain(&whole).unwrap(), vec![vec![1.5], vec![2.5]]);
    let head = read_chain_head(&whole).unwrap();
    assert_eq!(
        head,
        ChainHead {
            n_dims: 2,
            names: vec!["x0".into(), "x1".into()],
            first_beta: Some(1.0)
        }
    );
}

#[test]
fn a_malformed_row_is_reported_with_its_file_and_line() {
    let path = chain_file(
        "malformed",
        &format!("{HEADER}1,2,0.1,0.3,0.5,1,0\n1,oops,0.1,0.3,0.5,1,0\n1,2,0.1,0.3,0.5,1,0\n"),
    );
    let message = read_chain(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("line 3: x1 is `oops`"), "{message}");
    let short = chain_file("short", &format!("{HEADER}1,2,0.1,0.3,0.5,1\n"));
    let message = read_chain(&short).unwrap_err().to_string();
    assert!(
        message.contains("line 2: expected 7 fields, found 6"),
        "{message}"
    );
    let flag = chain_file("flag", &format!("{HEADER}1,2,0.1,0.3,0.5,1,7\n"));
    let message = read_chain(&flag).unwrap_err().to_string();
    assert!(message.contains("line 2: swap_type is `7`"), "{message}");
    // The first row of a hot chain is read without the rest.
    assert_eq!(read_chain_head(&path).unwrap().first_beta, Some(0.5));
}

#[test]
fn a_file_without_the_chain_header_is_rejected() {
    for (name, text) in [
        ("empty", ""),
        ("foreign", "a,b,c\n1,2,3\n"),
        ("unnamed", "x0,,energy,sigma,beta,accepted,swap_type\n"),
        ("twice", "x0,beta,energy,sigma,beta,accepted,swap_type\n"),
        ("reordered", "x0,energy,beta,sigma,accepted,swap_type\n"),
        ("no-dimensions", "energy,sigma,beta,accepted,swap_type\n"),
        ("repeated", "lat,lat,energy,sigma,beta,accepted,swap_type\n"),
    ] {
        let path = chain_file(name, text);
        let message = read_chain(&path).unwrap_err().to_string();
        assert!(message.contains("line 1:"), "{name}: {message}");
    }
    let empty = chain_file("no-rows", HEADER);
    assert_eq!(read_chain(&empty).unwrap(), vec![Vec::<f64>::new(); 2]);
    assert_eq!(read_chain_head(&empty).unwrap().first_beta, None);
}

#[test]
fn named_dimensions_head_the_file_and_name_its_errors() {
    let dir = std::env::temp_dir().join(format!("ganger-named-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let names = ["lat".to_owned(), "angle (deg)".to_owned()];
    let mut files = ChainFiles::create(&dir, 1, &names).unwrap();
    files.write(&[row(0, 0.5)]).unwrap();
    files.flush().unwrap();
    drop(files);
    let path = ChainFiles::path(&dir, 0);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("lat,angle (deg),energy,sigma,beta,accepted,swap_type\n"),
        "{text}"
    );
    let head = read_chain_head(&path).unwrap();
    assert_eq!((head.n_dims, head.names), (2, names.to_vec()));
    assert_eq!(read_chain(&path).unwrap(), vec![vec![0.5], vec![-0.5]]);
    let bad = chain_file(
        "named",
        "lat,angle (deg),energy,sigma,beta,accepted,swap_type\n1,east,0.1,0.3,1.0,1,0\n0,0,0,0,0,0,0\n",
    );
    let message = read_chain(&bad).unwrap_err().to_string();
    assert!(
        message.contains("line 2: angle (deg) is `east`"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
