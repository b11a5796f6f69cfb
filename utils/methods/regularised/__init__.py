"""The regularisation baselines, task-incremental with a head per task on one plain shared body: EWC
(Kirkpatrick et al. 2017; online EWC of Schwarz et al. 2018 as an option), a quadratic penalty that holds
the body's weights near each old task's solution in proportion to their Fisher information, and LwF (Li and
Hoiem 2016), a distillation loss that keeps old heads' outputs on the new task's images where they were.
Neither stores old tasks' images; both forget some, which is what they are here to show."""
