/* placeholder until written */
typedef int op_placeholder_unused;
