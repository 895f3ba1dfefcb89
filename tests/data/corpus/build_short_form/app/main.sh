#!/bin/sh
echo short form
