// ncore: NeuronCore kernels, written once against an abstract ISA, run on a
// device model (emitter, interpreter, cost model) and on a SIMD CPU reference.
#pragma once

#include <ncore/host.h>
#include <ncore/isa/core.h>
#include <ncore/isa/emit/emitter.h>
#include <ncore/isa/emit/listing.h>
#include <ncore/isa/emit/serialize.h>
#include <ncore/isa/numerics.h>
#include <ncore/isa/sim/interpreter.h>
#include <ncore/isa/target.h>
#include <ncore/kernels/gemm.h>
#include <ncore/reference/cpu_backend.h>
