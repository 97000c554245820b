"""Layer 2, the instruments: what a net does, measured without training it. Gradient norms,
activation statistics and update ratios per layer (`hooks`), the regime a gradient profile is in
(`regimes`), loss-landscape slices (`landscape`) and a net's cost in parameters and FLOPs
(`cost`).

Imports only `nets`."""
