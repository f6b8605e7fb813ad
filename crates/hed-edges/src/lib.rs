//! hed-edges
