/* Internal autograd API used by every op: how an op records a node and how a backward rule
 * reads what the forward saved. A backward rule computes, with deepc ops, the gradient of each
 * input from the gradient of the output (gin[i] = NULL where input i needs none). */
#ifndef DC_AUTOGRAD_IMPL_H
#define DC_AUTOGRAD_IMPL_H

#include <deepc/autograd.h>
#include <deepc/ops.h>
#include "../core/core-impl.h"
#include "op-args.h"
#include "op-list.h"

#define DC_NODE_MAX_SAVED 4

typedef struct dc_opdef {
  dc_op_kind kind; /* its row in DC_OP_LIST (src/autograd/op-list.h): name, saved-argument type */
  /* gout: gradient of the output [out shape]; gin[i]: gradient for inputs[i] [input i shape] */
  int (*backward)(dc_node *n, dc_tensor *gout, dc_tensor **gin);
} dc_opdef;

/* dc__op_<id>: the table entry of each op of the list, defined once, in the op's file, by
 * DC__OPDEF(id, backward rule); an op missing from the list does not compile, a listed op
 * without its entry does not link (test_op_list.c takes the address of every entry). */
#define DC_X(id, name, args) extern const dc_opdef dc__op_##id;
DC_OP_LIST(DC_X)
#undef DC_X
#define DC__OPDEF(id, backward) const dc_opdef dc__op_##id = {DC_OP_##id, backward}

/* The list's names by dc_op_kind (op-list.c); dc__op_name: the name of op, as users see it in
 * printing, graph export and messages ("mul", "sigmoid", ...). */
extern const char *const dc__op_names[DC_OP_COUNT];
static inline const char *dc__op_name(const dc_opdef *op) { return dc__op_names[op->kind]; }

/* The saved scalars of node n (op-args.h), typed: a dc__<type>_args pointer (const when n is),
 * for a node whose op's row in DC_OP_LIST names argument type `type`; written by the forward
 * after dc__record, read by the rule. A type that is not in DC_OP_ARGS_LIST does not compile; a
 * node of an op with another type breaks an invariant (a DC_ERR_STATE error naming the place). */
#define DC__ARGS(n, type)                                                                          \
  (dc__args_check((n)->op, DC__ARGS_##type, __FILE__, __LINE__), &(n)->args.type)
/* The list's argument type of each op, by dc_op_kind (op-list.c). */
extern const dc__args_kind dc__op_args_kinds[DC_OP_COUNT];
static inline void dc__args_check(const dc_opdef *op, dc__args_kind k, const char *file, int line) {
  if (DC__UNLIKELY(dc__op_args_kinds[op->kind] != k))
    dc__invariant_broken("DC__ARGS: the type of the node's op's arguments", file, line);
}

struct dc_node {
  dc__node_head head; /* first: what core sees (core-impl.h): release and name */
  const dc_opdef *op;
  int32_t refcount;
  int ninputs;
  dc_tensor **inputs; /* references to the op's inputs */
  dc_tensor *inline_inputs[3];
  dc_tensor *saved[DC_NODE_MAX_SAVED]; /* references to extra tensors the rule needs */
  dc__op_args args;                    /* the op's saved scalars: DC__ARGS(n, type) */
  dc_shape out_shape;
  dc_dtype out_dtype;
  dc_tensor *out; /* weak: the output while it is alive */
  void *ctx;      /* op-specific extra state */
  void (*ctx_free)(void *ctx);
  bool freed; /* graph freed by a backward without retain_graph */
  /* engine scratch */
  int32_t deps;
  uint32_t visit;
  dc_tensor *gacc;
};

/* Records a node for out = op(inputs) if grad mode is on and an input requires grad.
 * *node is the new node (NULL when none is needed); returns false on allocation failure. */
bool dc__record(const dc_opdef *op, dc_tensor *out, int n, dc_tensor *const *inputs,
                dc_node **node);
/* Saves a tensor reference in slot k of the node. */
void dc__save(dc_node *n, int k, dc_tensor *t);
/* Saves an alias of the op's output out (without its grad_fn: no reference cycle) in saved[k],
 * for rules that use the output (exp, pow, add_relu, ...); false (out of memory) when it could
 * not. */
bool dc__save_output(dc_node *n, int k, const dc_tensor *out);
void dc__node_release(dc_node *n);
/* True when the input k of n needs a gradient. */
bool dc__needs_grad(const dc_node *n, int k);

/* Anomaly mode (anomaly.c): the flag dc__record and the engine test before calling the checks.
 * dc__anomaly_forward: false + error when out holds NaN/inf; dc__anomaly_backward: runs n's rule
 * (its own ops unchecked), then an error status when a gradient gin[k] holds NaN/inf.
 * dc__first_nonfinite: index of the first NaN/inf of a floating-point tensor, -1 when none. */
extern bool dc__anomaly_on;
bool dc__anomaly_forward(const char *op, dc_tensor *out, int n, dc_tensor *const *inputs);
int dc__anomaly_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin);
int64_t dc__first_nonfinite(const dc_tensor *t);

/* Sums g [broadcast shape] down to shape s (the backward of broadcasting). A new reference. */
dc_tensor *dc__sum_to(dc_tensor *g, dc_shape s);

#endif
