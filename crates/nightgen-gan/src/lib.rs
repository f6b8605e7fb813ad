//! nightgen-gan
