"""Layer 1, the nets: residual blocks whose skip can be switched off (`blocks`), one config
dataclass per kind of net (`configs`), how their first weights are drawn (`init`), the
builders (`models`: CIFAR 6n+2, ImageNet ResNet and ResNeXt, deep MLPs), ResNeXt's three
forms (`cardinality`) and deleting blocks from a trained net (`ensembles`). With them the
rules every layer above shares: argument checks (`checks`), where a net runs (`devices`) and
the numbers quoted from the papers (`paper`).

Imports nothing else of the lab."""
