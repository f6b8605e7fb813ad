//! The UTM-named folder format: listing by walk and by `<folder>_images_paths.txt`, and errors
//! that name the file and line of a malformed name.

use std::path::Path;

use vpr_eval::{EvalError, GroundTruth, VprDataset, VprFolder};

fn touch(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"").unwrap();
}

#[test]
fn walk_order_and_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // database in two sub-folders; the sorted full paths give the order
    touch(&root.join("database/b/@0000100.00@0000200.00@54@S@35.1@139.1@p1@00@000@@@@@@.jpg"));
    touch(&root.join("database/a/@0000130.00@0000200.00@54@S@35.1@139.1@p2@01@030@@@@@@.jpg"));
    touch(&root.join("database/a/@0000090.00@0000180.00@54@S@35.1@139.1@p3@02@060@@@@@@.png"));
    touch(&root.join("database/a/notes.txt"));
    touch(&root.join("queries/@0000100.00@0000210.00@@@@@@@@@@@@@.jpg"));
    touch(&root.join("queries_night/@0000500.00@0000500.00@@@@@@@@@@@@@.JPG"));
    let ds = VprDataset::open(root, "queries").unwrap();
    let names = ds.database.relative_names();
    assert_eq!(names.len(), 3);
    assert!(names[0].starts_with("a/@0000090.00"));
    assert!(names[1].starts_with("a/@0000130.00"));
    assert!(names[2].starts_with("b/@0000100.00"));
    assert_eq!(ds.database.images[1].name.heading, Some(30.0));
    assert_eq!(
        VprDataset::query_folders(root).unwrap(),
        vec!["queries".to_string(), "queries_night".to_string()]
    );
    let gt = GroundTruth::from_dataset(&ds).unwrap();
    // query at (100, 210): db (100,200) 10 m, (130,200) 31.6 m, (90,180) 31.6 m
    assert_eq!(gt.positives(25.0).unwrap().lists, vec![vec![2]]);
    let night = VprDataset::open(root, "queries_night").unwrap();
    assert_eq!(night.queries.images.len(), 1);
}

#[test]
fn images_paths_file_gives_order_and_line_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("database");
    let a = "@0000001.00@0000002.00@@@@@@@@@@@@@.jpg";
    let b = "@0000003.00@0000004.00@@@@@@@@@@@@@.jpg";
    touch(&db.join(a));
    touch(&db.join(b));
    let list = tmp.path().join("database_images_paths.txt");
    std::fs::write(&list, format!("{b}\n{a}\n")).unwrap();
    let f = VprFolder::read(&db).unwrap();
    assert_eq!(f.utm(), vec![[3.0, 4.0], [1.0, 2.0]]);
    std::fs::write(&list, format!("{b}\n{a}\nphoto_without_utm.jpg\n")).unwrap();
    match VprFolder::read(&db) {
        Err(EvalError::BadImageName {
            path, line, name, ..
        }) => {
            assert_eq!(path.as_deref(), Some(list.as_path()));
            assert_eq!(line, Some(3));
            assert_eq!(name, "photo_without_utm.jpg");
        }
        other => panic!("{other:?}"),
    }
    // listed but absent
    std::fs::write(&list, "@0000009.00@0000002.00@.jpg\n").unwrap();
    assert!(matches!(VprFolder::read(&db), Err(EvalError::Io { .. })));
}

#[test]
fn malformed_and_empty_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("database");
    touch(&db.join("IMG_0001.jpg"));
    assert!(matches!(
        VprFolder::read(&db),
        Err(EvalError::BadImageName { .. })
    ));
    let empty = tmp.path().join("queries");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        VprFolder::read(&empty),
        Err(EvalError::Empty { .. })
    ));
    assert!(matches!(
        VprFolder::read(tmp.path().join("absent")),
        Err(EvalError::Io { .. })
    ));
}
