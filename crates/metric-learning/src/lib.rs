//! metric-learning
