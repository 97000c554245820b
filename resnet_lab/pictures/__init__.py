"""Layer 5, the pictures: pure functions from numbers or models to figures. Curves and gradient
profiles (`plots`), bar charts of measured numbers (`bars`), the network strip (`strip`) and
drawings of blocks and nets made from the model objects (`diagrams`).

Imports `nets`, `instruments` and `training` (for its data and histories)."""
