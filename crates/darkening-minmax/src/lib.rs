//! darkening-minmax
