//! What a run leaves for people: the HTML report and the figures of a run or a sweep.

pub mod figures;
pub mod html;
