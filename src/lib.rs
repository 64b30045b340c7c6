//! eni-agent library.
