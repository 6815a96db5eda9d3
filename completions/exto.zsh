#compdef exto

_exto_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _EXTO_COMPLETE=complete_zsh exto)
}

compdef _exto_completion exto
