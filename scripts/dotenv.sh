# Sourced by the scripts: load KEY=VALUE lines from .env for keys the environment does not set,
# so a variable given on the command line always wins over the file. Empty values are ignored.
_dotenv=${WINE_DOTENV:-${ROOT:-.}/.env}
if [ -f "$_dotenv" ]; then
  while IFS= read -r _line || [ -n "$_line" ]; do
    case "$_line" in ''|'#'*) continue ;; esac
    _key=${_line%%=*}; _value=${_line#*=}
    case "$_key" in *[!A-Za-z0-9_]*|'') continue ;; esac
    [ -n "$_value" ] && [ -z "${!_key:-}" ] && export "$_key=$_value"
  done < "$_dotenv"
fi
unset _dotenv _line _key _value
