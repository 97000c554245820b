"""Layer 3, training: data and batches (`data`, `downloads`), how a net trains (`recipes`), one
training step as an object (`step`; `captured` records it as a CUDA graph, `graphs_cpu` is the
CPU test double of CUDA graphs), the loop that trains nets side by side (`train`), its hooks
(`callbacks`, `checkpoint`), the record it leaves (`history`), evaluation that measures the net
(`evaluation`: precise BatchNorm first) and what two runs share (`comparison`).

Imports `nets` and `instruments`."""
