/* deepc: deep learning in C. Include this one header for the whole public API. */
#ifndef DEEPC_H
#define DEEPC_H

#include "export.h"
#include "error.h"
#include "alloc.h"
#include "tensor.h"
#include "ops.h"
#include "autograd.h"
#include "nn_functional.h"
#include "nn.h"
#include "optim.h"
#include "data.h"
#include "zoo.h"
#include "io.h"
#include "train.h"
#include "onnx.h"
#include "autocast.h"

#define DEEPC_VERSION_MAJOR 0
#define DEEPC_VERSION_MINOR 1
#define DEEPC_VERSION_PATCH 0
#define DEEPC_VERSION "0.1.0"

#endif
