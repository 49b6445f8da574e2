"""Citizens' petitions (đơn thư): the register, the handling office's decisions, signed refusals."""
