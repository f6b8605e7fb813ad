use image::Rgb32FImage;
use nightvision_core::clahe::*;
fn rf(p: &str) -> Vec<f32> { std::fs::read(p).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0],b[1],b[2],b[3]])).collect() }
fn cmp(name: &str, a: &[f32], b: &[f32]) { let mut n=0; let mut m=0f32; for (x,y) in a.iter().zip(b) { if x.to_bits()!=y.to_bits() { n+=1; m=m.max((x-y).abs()); } } println!("{name}: {n} of {} differ, max {m:e}", a.len()); }
#[test]
fn dev() {
    let lut: Vec<u16> = std::fs::read("/tmp/clahe_dev/cvlut.u16").unwrap().chunks_exact(2).map(|b| u16::from_le_bytes([b[0],b[1]])).collect();
    let mut grid = vec![];
    for p in 0..33 { for q in 0..33 { for r in 0..33 { grid.extend([r as f32/32.0, q as f32/32.0, p as f32/32.0]); } } }
    let lab = rgb_to_lab(&Rgb32FImage::from_raw(35937, 1, grid).unwrap()).unwrap();
    let ints: Vec<u16> = lab.as_raw().chunks_exact(3).flat_map(|v| [(v[0]*16384.0/100.0).round() as u16, ((v[1]+128.0)*64.0).round() as u16, ((v[2]+128.0)*64.0).round() as u16]).collect();
    let n = ints.iter().zip(&lut).filter(|(a,b)| a!=b).count();
    println!("LUT: {n} of {} entries differ", lut.len());
    let big = image::open("/tmp/clahe_dev/big_in.png").unwrap().into_rgb8();
    let t = std::time::Instant::now();
    let out = clahe_lab(&big, &ClaheConfig::DARK_SIDE).unwrap();
    println!("big {:?}", t.elapsed());
    cmp("big", out.as_raw(), &rf("/tmp/clahe_dev/big_out.f32"));
    let u8i = image::open("/tmp/clahe_dev/u8_in.png").unwrap().into_rgb8();
    cmp("u8", clahe_lab(&u8i, &ClaheConfig::DARK_SIDE).unwrap().as_raw(), &rf("/tmp/clahe_dev/u8_out.f32"));
    let ri = Rgb32FImage::from_raw(777, 555, rf("/tmp/clahe_dev/rand_in.f32")).unwrap();
    cmp("rand", clahe_lab_f32(&ri, &ClaheConfig::new(2.5, (5,7)).unwrap()).unwrap().as_raw(), &rf("/tmp/clahe_dev/rand_out.f32"));
}
