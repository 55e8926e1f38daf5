/* The program text of the `fused_elementwise` op (src/ops/fused.c), shared
 * by the fusion pass that writes programs and the op that runs them.
 *
 * A program is a sequence of statements separated by ';'. The op's inputs
 * are registers r0..r(n_in-1); statement j defines register r(n_in+j); the
 * last statement's register is the output. A statement is an op name, its
 * parameters in parentheses when it has any, and its operands separated
 * by spaces; an operand is a register (rK, defined earlier) or a literal
 * number (a scalar constant: 0.5, -2, 1e-05, inf, -inf, nan). Example with
 * two inputs:
 *
 *     mul r0 r1;exp r2;add r3 0.5;clip(-1,1) r4
 *
 * computes clip(exp(r0*r1) + 0.5, -1, 1). Op names and parameters:
 *   unary  neg abs sign square reciprocal sqrt rsqrt exp expm1 log log1p
 *          sin cos tan tanh erf sigmoid relu silu floor ceil round
 *          gelu (erf form) gelu_tanh (approximate=1) leaky_relu(slope)
 *          elu(alpha) softplus(beta,threshold) clip(lo,hi)
 *   binary add sub mul div maximum minimum pow
 * Every statement computes in the op's dtype attribute (f32 or f64) with
 * exactly the formulas of the unfused elementwise ops. */
#ifndef FERN_FUSED_PROGRAM_H
#define FERN_FUSED_PROGRAM_H

#include <stddef.h>

#include "../ops/op_def.h"

/* Longest program the fusion pass writes: the IR parser reads string
 * attributes of up to 255 characters. */
#define FERN_FUSED_MAX_PROGRAM 4095

extern const fern_op_def fern__op_fused_elementwise;

/* If op (with attrs) can be a statement, write its head (name and
 * parameters, e.g. "leaky_relu(0.01)") to buf and return its arity (1 or
 * 2); else return -1. */
int fern__fused_op_head(const fern_op_def *op, const fern_attr *attrs, char *buf, size_t n);

/* The shortest literal that reads back (strtod, then converted to dtype dt,
 * f32 or f64) to v converted to dt. Returns its length. */
int fern__fused_literal(double v, fern_dtype dt, char *buf, size_t n);

#endif
