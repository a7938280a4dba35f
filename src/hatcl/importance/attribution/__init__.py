"""Attribution importance: the Captum-based neuron-wise measures of FG-AdaHAT (docs/spec.md §6).

Modules: ``bound`` (the logits-only module and the side-effect guard), ``passes`` (the tapped
forwards, gradients and chunking the exact implementations are built from), ``shared`` (exact
implementations serving every layer from shared passes), ``per_layer`` (Captum called once per
layer, the reference's way and the oracle), ``lrp_rules`` (LRP rules for hatcl's modules) and
``measures`` (the registry entries).
"""
