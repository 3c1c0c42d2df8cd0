//===- QSimAttrs.td - qsim enums and attributes ------------*- tablegen -*-===//

#ifndef QSIM_ATTRS_TD
#define QSIM_ATTRS_TD

include "QSimDialect.td"

// Every activation Darknet knows (docs/darknet.md §R4.0). The numbering is
// ours.
def QSim_Activation : I32EnumAttr<"Activation", "Darknet activation function", [
  I32EnumAttrCase<"linear", 0>,
  I32EnumAttrCase<"logistic", 1>,
  I32EnumAttrCase<"loggy", 2>,
  I32EnumAttrCase<"relu", 3>,
  I32EnumAttrCase<"relu6", 4>,
  I32EnumAttrCase<"leaky", 5>,
  I32EnumAttrCase<"relie", 6>,
  I32EnumAttrCase<"ramp", 7>,
  I32EnumAttrCase<"elu", 8>,
  I32EnumAttrCase<"selu", 9>,
  I32EnumAttrCase<"gelu", 10>,
  I32EnumAttrCase<"tanh", 11>,
  I32EnumAttrCase<"plse", 12>,
  I32EnumAttrCase<"hardtan", 13>,
  I32EnumAttrCase<"lhtan", 14>,
  I32EnumAttrCase<"stair", 15>,
  I32EnumAttrCase<"swish", 16>,
  I32EnumAttrCase<"mish", 17>,
  I32EnumAttrCase<"hard_mish", 18>,
  I32EnumAttrCase<"normalize_channels", 19>,
  I32EnumAttrCase<"normalize_channels_softmax", 20>,
  I32EnumAttrCase<"normalize_channels_softmax_maxval", 21>
]> {
  let cppNamespace = "::qsim";
  let genSpecializedAttr = 0;
}
def QSim_ActivationAttr : EnumAttr<QSim_Dialect, QSim_Activation, "act"> {
  let assemblyFormat = "`<` $value `>`";
}

def QSim_NmsKind : I32EnumAttr<"NmsKind", "Darknet NMS kind", [
  I32EnumAttrCase<"default_nms", 0, "default">,
  I32EnumAttrCase<"greedynms", 1>,
  I32EnumAttrCase<"diounms", 2>,
  I32EnumAttrCase<"cornersnms", 3>
]> {
  let cppNamespace = "::qsim";
  let genSpecializedAttr = 0;
}
def QSim_NmsKindAttr : EnumAttr<QSim_Dialect, QSim_NmsKind, "nms"> {
  let assemblyFormat = "`<` $value `>`";
}

// An i64 attribute read as a signed value (upstream I64Attr returns
// uint64_t, which turns Darknet's negative strides into huge numbers).
def QSim_I64Attr : TypedSignlessIntegerAttrBase<
    I64, "int64_t", "64-bit signless integer attribute"> {
  let convertFromStorage = "$_self.getValue().getSExtValue()";
}

#endif // QSIM_ATTRS_TD
