"""Every number the lab quotes from a paper (or from a library's published table), each with
where it comes from. The lessons, the grid's report and the lab's own checks print and read
them from here; nothing the lab measures lives here.

- He et al. 2015, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385)
- Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural Networks" (ResNeXt)
- Szegedy et al. 2015, "Going Deeper with Convolutions" (GoogLeNet)
- torchvision's model documentation (the IMAGENET1K_V1 weights)
- Karpathy, "Building makemore Part 3" (a lecture)
"""

from __future__ import annotations

# He et al. 2015, Table 6: CIFAR-10 test error (%) of the ResNets of §4.2 (width 16, crop and
# flip) after 64k iterations, by depth; ResNet-110's is the best of 5 runs.
HE2015_CIFAR_SIZE, HE2015_CIFAR_WIDTH = 32, 16   # He et al. 2015 §4.2: 32x32, stages 16/32/64
HE2015_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
HE2015_TABLE6_SOURCE = ("He et al. 2015, Table 6: CIFAR-10 test error after 64k iterations "
                        "(ResNet-110: best of 5 runs, mean 6.61 ± 0.16)")

# He et al. 2015, Fig. 6 (left): "the error of plain-110 is higher than 60% and not displayed"
HE2015_PLAIN_NOT_DRAWN = 110
HE2015_FIG6_PLAIN = ("He et al. give no table for the plain nets. Their Fig. 6 (left, CIFAR-10) "
                     "shows the deeper plain nets with the higher training *and* test error, "
                     f"plain-56 above plain-20, and plain-{HE2015_PLAIN_NOT_DRAWN}'s error above "
                     "60% (not drawn).")

# He et al. 2015, Table 1: FLOPs (multiply-adds) of the ImageNet models at 224x224, in 10^9
HE2015_TABLE1_GFLOPS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6,
                        "resnet152": 11.3}

# Xie et al. 2017, Table 2: ResNet-50's bottleneck template with C paths of d channels each,
# (C, d) chosen so that every variant keeps about the same parameters and FLOPs
XIE2017_TABLE2 = ((1, 64), (2, 40), (4, 24), (8, 14), (32, 4))
# Xie et al. 2017, Table 3: ImageNet-1K top-1 error (%) of those (C, d) variants
XIE2017_TABLE3 = dict(zip(XIE2017_TABLE2, (23.9, 23.0, 22.6, 22.3, 22.2), strict=True))

# Szegedy et al. 2015, Table 1: GoogLeNet's inception (3a) on 192 channels, branch by branch
SZEGEDY2015_INCEPTION_3A = (
    ("1×1 192→64",), ("1×1 192→96", "3×3 96→128"), ("1×1 192→16", "5×5 16→32"),
    ("3×3 max pool", "1×1 192→32"))

# torchvision's model docs, IMAGENET1K_V1 weights: ImageNet top-1 accuracy (%), 224x224
TORCHVISION_TOP1 = {"resnet18": 69.758, "resnet34": 73.314, "resnet50": 76.130,
                    "resnet101": 77.374, "resnet152": 78.312, "resnext50_32x4d": 77.618,
                    "wide_resnet50_2": 78.468}
# ... and ResNet-50's parameters and GFLOPS (torchvision's "FLOPs" count multiply-adds)
TORCHVISION_RESNET50_PARAMS, TORCHVISION_RESNET50_GMACS = 25_557_032, 4.09

# Karpathy's rule of thumb (makemore, part 3): an update of about 1e-3 of a layer's weights
# per step is healthy; far below, the layer is not learning; far above, it is thrashing
KARPATHY_UPDATE_RATIO = 1e-3
