/* conf.c placeholder */ typedef int sp_conf_placeholder;
