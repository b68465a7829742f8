//! Financial tasks and their prompts, and the XBRL prompt builder shared with the agent.
//!
//! Knows filings and tasks, never tensors.

pub mod xbrl_prompt;
