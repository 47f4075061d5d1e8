# Sourced by assemble and run: the checks both make, with messages that say what to fix.
fail() { echo "---> $(basename "$0"): error: $*" >&2; exit 1; }

check_env() {
  [[ -n "${MODEL_NAME:-}" ]] || fail "MODEL_NAME is not set: name the router class in .s2i/environment," \
    "e.g. MODEL_NAME=MyRouter (class MyRouter in MyRouter.py, Seldon's form), my_module.MyRouter or a built-in (ab-test)"
  local type=${SERVICE_TYPE:-ROUTER}
  [[ "${type^^}" == ROUTER ]] || fail "SERVICE_TYPE=$type: this builder serves ROUTER units" \
    "(build models with Seldon's own seldon-core-s2i-python3)"
  # PERSISTENCE: accepted and ignored, as Seldon's wrapper does since it removed persistence;
  # learned state is kept with SELDON_ROUTER_STATE (file:PATH or redis://...).
}

# MODEL_NAME as `seldon-router serve` takes it: Seldon's bare form MyRouter (module and class
# of one name, a MyRouter.py or MyRouter/ in /microservice) becomes MyRouter.MyRouter.
router_spec() {
  if [[ "$MODEL_NAME" != *[.:]* && ( -f "$MODEL_NAME.py" || -d "$MODEL_NAME" ) ]]; then
    echo "$MODEL_NAME.$MODEL_NAME"
  else
    echo "$MODEL_NAME"
  fi
}
